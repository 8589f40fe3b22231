# What ggsight's build and its plug-in builds (backends/CMakeLists.txt) do to the same vendored,
# unmodified ggml, kept in one place because the plug-ins must match ggsight's libraries exactly.

# vendor/ggml empty (a git checkout) or holding another pin's tree (vendor/ggml/VERSION differs
# from PIN): fetch the pin. An unpacked sdist's matching tree is left as it is, offline.
function(ggsight_fetch_ggml ggml_dir)
    find_package(Python COMPONENTS Interpreter REQUIRED)
    execute_process(COMMAND "${Python_EXECUTABLE}" "${ggml_dir}/fetch.py" RESULT_VARIABLE fetch_rc)
    if(NOT fetch_rc EQUAL 0)
        message(FATAL_ERROR "ggsight: could not fetch ggml (see above); run python vendor/ggml/fetch.py")
    endif()
    # a changed pin re-runs this configure step
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${ggml_dir}/PIN")
endfunction()

# Our names for ggml's core libraries (those of `cores` that exist), unversioned, and no version
# suffix on the backend `modules` either: another ggml in the same process (llama-cpp-python,
# another pin) has other sonames, so neither binds to the other's symbols, a plug-in's DT_NEEDED
# names the ggml-base ggsight loaded, and a wheel cannot hold the usual .so -> .so.0 symlinks.
# Backends keep ggml's file names (libggml-<backend>[-<variant>]), which is how they are found.
# Every target given is found beside the others at run time (RPATH $ORIGIN).
function(ggsight_ggml_names)
    cmake_parse_arguments(ARG "" "" "CORES;MODULES;OTHERS" ${ARGN})
    foreach(core IN LISTS ARG_CORES)
        set_target_properties(${core} PROPERTIES OUTPUT_NAME "ggsight-${core}")
    endforeach()
    foreach(target IN LISTS ARG_CORES ARG_MODULES)
        set_property(TARGET ${target} PROPERTY VERSION)
        set_property(TARGET ${target} PROPERTY SOVERSION)
    endforeach()
    foreach(target IN LISTS ARG_CORES ARG_MODULES ARG_OTHERS)
        if(APPLE)
            set_target_properties(${target} PROPERTIES INSTALL_RPATH "@loader_path")
        else()
            set_target_properties(${target} PROPERTIES INSTALL_RPATH "$ORIGIN")
        endif()
    endforeach()
endfunction()
