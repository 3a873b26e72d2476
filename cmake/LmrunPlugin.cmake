# lmrun_add_plugin(NAME SOURCES a.cpp b.cpp ...)
#
# Builds a plugin as a MODULE library `lmrun-NAME.so` against lmrun::sdk, with hidden visibility
# so that only the `lmrun_plugin` entry point is exported. In lmrun's own tree the library lands in
# the build's plugin folder and installs with lmrun; out of tree it lands in the caller's build
# folder, to be named by LMRUN_PLUGIN_PATH, `[plugins] paths` or `--plugin-dir`.
function(lmrun_add_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "lmrun_add_plugin(${name}): no SOURCES given")
  endif()
  set(target lmrun_plugin_${name})
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE lmrun::sdk)
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME lmrun-${name}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # An unresolved symbol is a build error here, not a load error in front of a user.
  target_link_options(${target} PRIVATE -Wl,--no-undefined)
  if(DEFINED LMRUN_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${LMRUN_PLUGIN_OUTPUT_DIR})
    install(TARGETS ${target} LIBRARY DESTINATION ${LMRUN_PLUGIN_SUBDIR})
  endif()
endfunction()
