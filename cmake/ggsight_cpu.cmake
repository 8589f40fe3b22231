# The CPU backend for a source build: the kernels llama.cpp's default (GGML_NATIVE) build selects
# on the same CPU, so the same GGUF gives the same numbers in both.
#
# ggml refuses GGML_NATIVE together with GGML_BACKEND_DL on x86 (its run-time feature check needs
# the instruction sets spelled out). So a plain `pip install .` asks the compiler what
# `-march=native` turns on here (the compiler's own CPUID reading, which is what llama.cpp's
# native build compiles with), turns on ggml's options for those instruction sets (for ggml's
# feature check), and compiles ggml's CPU backend with `-march=native` as well: every macro ggml's
# kernels test (__AVXVNNI__, __AVX512FP16__, __GFNI__, ...) is then what llama.cpp's native build
# sees. Reading /proc/cpuinfo instead is not the same: a hypervisor can hide a flag there that
# CPUID shows, and instruction sets ggml has no option for (AVX512-FP16) were left out.
# The portable wheel instead asks for every variant (-DGGML_CPU_ALL_VARIANTS=ON -DGGML_NATIVE=OFF)
# and ggsight picks at run time.
#
# Options given in CMAKE_ARGS win over what is read here. A build tree is re-read on every
# configure: a tree configured on another CPU (a clone copied to another machine, a kept build/
# dir) gets this CPU's options, and the CPU backend's objects are recompiled (their command line
# carries this CPU's fingerprint), not reused from the other machine.

# The x86 ISA macros `-march=native` defines (empty where the compiler has no such flag: MSVC).
function(ggsight_native_isa_macros out)
    set(${out} "" PARENT_SCOPE)
    if(MSVC)
        return()
    endif()
    set(probe "${CMAKE_BINARY_DIR}/ggsight_isa_probe.c")
    file(WRITE "${probe}" "")
    execute_process(COMMAND "${CMAKE_C_COMPILER}" -march=native -dM -E "${probe}"
                    OUTPUT_VARIABLE defines RESULT_VARIABLE rc ERROR_QUIET)
    if(NOT rc EQUAL 0)
        return()
    endif()
    string(REGEX MATCHALL "#define __[A-Z0-9_]+__ 1" lines "${defines}")
    set(macros "")
    foreach(line IN LISTS lines)
        string(REGEX REPLACE "#define (__[A-Z0-9_]+__) 1" "\\1" macro "${line}")
        list(APPEND macros "${macro}")
    endforeach()
    list(SORT macros)
    set(${out} "${macros}" PARENT_SCOPE)
endfunction()

function(ggsight_cpu_from_host)
    # GGSIGHT_CPU_FROM_HOST: an earlier configure of this tree set GGML_NATIVE itself
    if(GGML_CPU_ALL_VARIANTS OR (DEFINED CACHE{GGML_NATIVE} AND NOT GGSIGHT_CPU_FROM_HOST))
        set(GGSIGHT_CPU_NATIVE_FLAGS "" CACHE INTERNAL "")
        return()
    endif()
    set(GGSIGHT_CPU_FROM_HOST ON CACHE INTERNAL "GGML_NATIVE and the ISA options are read from the host")
    if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i686)$")
        set(GGSIGHT_CPU_NATIVE_FLAGS "" CACHE INTERNAL "")
        return()  # elsewhere (arm64, ...) ggml's native build works with dynamic backends
    endif()
    set(GGML_NATIVE OFF CACHE BOOL "ggml: optimize the build for the current system")
    ggsight_native_isa_macros(macros)
    # ggml option  <-  what it needs (all of it): compiler macros, or /proc/cpuinfo flags
    set(map_macros
        "GGML_SSE42=__SSE4_2__" "GGML_AVX=__AVX__" "GGML_AVX2=__AVX2__" "GGML_FMA=__FMA__"
        "GGML_F16C=__F16C__" "GGML_BMI2=__BMI2__" "GGML_AVX_VNNI=__AVXVNNI__"
        "GGML_AVX512=__AVX512F__,__AVX512CD__,__AVX512VL__,__AVX512DQ__,__AVX512BW__"
        "GGML_AVX512_VBMI=__AVX512VBMI__" "GGML_AVX512_VNNI=__AVX512VNNI__" "GGML_AVX512_BF16=__AVX512BF16__")
    set(map_cpuinfo
        "GGML_SSE42=sse4_2" "GGML_AVX=avx" "GGML_AVX2=avx2" "GGML_FMA=fma" "GGML_F16C=f16c"
        "GGML_BMI2=bmi2" "GGML_AVX_VNNI=avx_vnni"
        "GGML_AVX512=avx512f,avx512cd,avx512vl,avx512dq,avx512bw"
        "GGML_AVX512_VBMI=avx512vbmi" "GGML_AVX512_VNNI=avx512_vnni" "GGML_AVX512_BF16=avx512_bf16")
    if(macros)
        set(have "${macros}")
        set(map "${map_macros}")
        set(source "the compiler's -march=native")
        string(MD5 fingerprint "${macros}")
        # ggml's AMX int8 kernels stay off (they crashed with SIGILL on the Sapphire Rapids machine
        # this project was first built on; ggsight's own bf16 tile kernels do not depend on them):
        # -march=native would turn them on, so they are turned off after it.
        set(native_flags -march=native -DGGSIGHT_HOST_ISA=${fingerprint})
        if("__AMX_TILE__" IN_LIST macros AND NOT GGML_AMX_INT8)
            list(APPEND native_flags -mno-amx-int8 -mno-amx-bf16 -mno-amx-tile)
        endif()
    else()
        set(native_flags "")
        set(map "${map_cpuinfo}")
        if(EXISTS /proc/cpuinfo)
            file(STRINGS /proc/cpuinfo flag_lines REGEX "^flags[ \t]*:" LIMIT_COUNT 1)
            string(REGEX REPLACE "^flags[ \t]*:[ \t]*" "" have "${flag_lines}")
            string(REPLACE " " ";" have "${have}")
            set(source "/proc/cpuinfo")
        else()
            # no -march=native and no /proc/cpuinfo (MSVC on Windows): the AVX2 generation every
            # x86-64 CPU since 2013 has
            set(have sse4_2 avx avx2 fma f16c bmi2)
            set(source "the AVX2 baseline")
        endif()
    endif()
    set(enabled "")
    set(overridden "")
    foreach(entry IN LISTS map)
        string(REPLACE "=" ";" pair "${entry}")
        list(GET pair 0 option)
        list(GET pair 1 needs)
        string(REPLACE "," ";" needs "${needs}")
        set(on ON)
        foreach(need IN LISTS needs)
            if(NOT need IN_LIST have)
                set(on OFF)
            endif()
        endforeach()
        # GGSIGHT_HOST_<option>: the value an earlier configure read from its host. A cached value
        # equal to it was ours, and is replaced by this host's; any other was given by the user.
        if(NOT DEFINED CACHE{${option}})
            set(${option} ${on} CACHE BOOL "ggml: ${option} (read from this CPU by ggsight)")
            set(GGSIGHT_HOST_${option} ${on} CACHE INTERNAL "")
        elseif(DEFINED CACHE{GGSIGHT_HOST_${option}} AND "$CACHE{${option}}" STREQUAL "$CACHE{GGSIGHT_HOST_${option}}")
            set(${option} ${on} CACHE BOOL "ggml: ${option} (read from this CPU by ggsight)" FORCE)
            set(GGSIGHT_HOST_${option} ${on} CACHE INTERNAL "")
        endif()
        if(${option})
            list(APPEND enabled ${option})
        endif()
        if((${option} AND NOT on) OR (on AND NOT ${option}))
            list(APPEND overridden ${option})
        endif()
    endforeach()
    # an instruction set turned off (or on) in CMAKE_ARGS: -march=native would undo that, so the
    # CPU backend gets ggml's explicit flags only
    if(overridden)
        message(STATUS "ggsight: ${overridden} set in CMAKE_ARGS: the CPU backend is built without -march=native")
        set(native_flags "")
    endif()
    set(GGSIGHT_CPU_NATIVE_FLAGS "${native_flags}" CACHE INTERNAL "compile flags of the CPU backend")
    string(REPLACE ";" " " enabled "${enabled}")
    message(STATUS "ggsight: CPU backend for this machine (from ${source}): ${enabled} ${GGSIGHT_CPU_NATIVE_FLAGS}")
endfunction()

# After add_subdirectory(ggml): compile the CPU backend as llama.cpp's native build does.
function(ggsight_cpu_native_compile)
    if(GGSIGHT_CPU_NATIVE_FLAGS AND TARGET ggml-cpu)
        target_compile_options(ggml-cpu PRIVATE ${GGSIGHT_CPU_NATIVE_FLAGS})
    endif()
endfunction()
