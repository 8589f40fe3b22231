# The CPU backend for a source build. ggml refuses GGML_NATIVE together with GGML_BACKEND_DL on
# x86 (its run-time feature check needs the instruction sets spelled out), so a plain
# `pip install .` reads this machine's instruction sets and turns on ggml's options for them:
# one CPU library tuned for the builder, like a native build. The portable wheel instead asks
# for every variant (-DGGML_CPU_ALL_VARIANTS=ON -DGGML_NATIVE=OFF) and ggsight picks at run time.
# Options given in CMAKE_ARGS win over what is read here. A build tree is re-read on every
# configure: a tree configured on another CPU (a clone copied to another machine, a kept
# build/ dir) gets this CPU's options, not the ones cached there.

function(ggsight_cpu_from_host)
    # GGSIGHT_CPU_FROM_HOST: an earlier configure of this tree set GGML_NATIVE itself
    if(GGML_CPU_ALL_VARIANTS OR (DEFINED CACHE{GGML_NATIVE} AND NOT GGSIGHT_CPU_FROM_HOST))
        return()
    endif()
    set(GGSIGHT_CPU_FROM_HOST ON CACHE INTERNAL "GGML_NATIVE and the ISA options are read from the host")
    if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i686)$")
        return()  # elsewhere (arm64, ...) ggml's native build works with dynamic backends
    endif()
    set(GGML_NATIVE OFF CACHE BOOL "ggml: optimize the build for the current system")
    set(flags "")
    if(EXISTS /proc/cpuinfo)
        file(STRINGS /proc/cpuinfo flag_lines REGEX "^flags[ \t]*:" LIMIT_COUNT 1)
        string(REGEX REPLACE "^flags[ \t]*:[ \t]*" "" flags "${flag_lines}")
        string(REPLACE " " ";" flags "${flags}")
    else()
        # no /proc/cpuinfo (macOS, Windows): the AVX2 generation every x86-64 CPU since 2013 has
        set(flags sse4_2 avx avx2 fma f16c bmi2)
    endif()
    # ggml option  <-  the /proc/cpuinfo flags it needs (all of them)
    set(map
        "GGML_SSE42=sse4_2" "GGML_AVX=avx" "GGML_AVX2=avx2" "GGML_FMA=fma" "GGML_F16C=f16c"
        "GGML_BMI2=bmi2" "GGML_AVX_VNNI=avx_vnni"
        "GGML_AVX512=avx512f,avx512cd,avx512vl,avx512dq,avx512bw"
        "GGML_AVX512_VBMI=avx512vbmi" "GGML_AVX512_VNNI=avx512_vnni" "GGML_AVX512_BF16=avx512_bf16")
    # ggml's AMX int8 kernels are left off: they crashed (SIGILL) on the Sapphire Rapids machine
    # this project is built on; ggsight's own bf16 tile kernels do not depend on them.
    set(enabled "")
    foreach(entry IN LISTS map)
        string(REPLACE "=" ";" pair "${entry}")
        list(GET pair 0 option)
        list(GET pair 1 needs)
        string(REPLACE "," ";" needs "${needs}")
        set(on ON)
        foreach(need IN LISTS needs)
            if(NOT need IN_LIST flags)
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
    endforeach()
    string(REPLACE ";" " " enabled "${enabled}")
    message(STATUS "ggsight: CPU backend for this machine: ${enabled}")
endfunction()
