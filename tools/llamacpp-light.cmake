# Included after llama.cpp's project() (CMAKE_PROJECT_INCLUDE): once every target exists,
# compile the code that never runs in a benchmark's hot path (the common helpers, the server's
# HTTP/JSON/template code, the multimodal library a text model never enters) at -O0, so the
# build fits a shared two-core machine. ggml-base, ggml-cpu and libllama keep Release -O3.
get_property(_light_done GLOBAL PROPERTY INFITOOL_LIGHT_DEFERRED)
if(NOT _light_done)
  set_property(GLOBAL PROPERTY INFITOOL_LIGHT_DEFERRED TRUE)
  function(infitool_light_flags)
    foreach(target llama-common llama-common-base server-context llama-server-impl llama-server llama-ui
                   cpp-httplib vendor-hash llama-bench-impl llama-bench llama-quantize-impl llama-quantize)
      if(TARGET ${target})
        target_compile_options(${target} PRIVATE -O0)
      endif()
    endforeach()
    if(TARGET mtmd)
      target_compile_options(mtmd PRIVATE -O0)
    endif()
    # Unity builds: at -O0 most of the time is parsing the same big headers (nlohmann/json) again.
    # GROUP mode, 16 sources a unit; a source given no group compiles alone: common/json.cpp
    # declares its own `ordered_json`, which clashes with the other files' one inside a unit, and
    # mtmd-helper*.cpp refuse (#error) to see mtmd's internal headers, which a unit gives them.
    foreach(target llama-common mtmd server-context)
      if(TARGET ${target})
        get_target_property(sources ${target} SOURCES)
        get_target_property(folder ${target} SOURCE_DIR)
        set(count 0)
        foreach(source ${sources})
          if(source MATCHES "\\.cpp$" AND NOT source MATCHES "(^|/)(json|mtmd-helper|mtmd-helper-gen)\\.cpp$")
            math(EXPR group "${count} / 16")
            if(IS_ABSOLUTE ${source})
              set(path ${source})
            else()
              set(path ${folder}/${source})
            endif()
            set_property(SOURCE ${path} TARGET_DIRECTORY ${target} PROPERTY UNITY_GROUP ${target}_${group})
            math(EXPR count "${count} + 1")
          endif()
        endforeach()
        set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_MODE GROUP)
      endif()
    endforeach()
  endfunction()
  cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL infitool_light_flags)
endif()
