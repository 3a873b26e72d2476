# The plugin helpers, the same in lmrun's tree and for a plugin built against an installed lmrun
# (lmrunConfig.cmake includes this file):
#
#   lmrun_add_plugin(NAME SOURCES a.cpp b.cpp ...)         a plugin library, lmrun-NAME.so
#   lmrun_add_conformance_test(TARGET lmrun_plugin_NAME)   its conformance suites, as a ctest entry
#
# Both build optimised when the project sets no build type: the compiler's Release flags (-O3
# -DNDEBUG for GCC) apply to their targets only while CMAKE_BUILD_TYPE is empty, so a build
# type the user sets (Debug, RelWithDebInfo) is never overridden.

# Where the conformance runner's sources are: lmrun's own tree here; lmrunConfig.cmake sets the
# installed copy (<prefix>/share/lmrun/testing) before including this file.
if(NOT DEFINED LMRUN_TESTING_SOURCE_DIR)
  set(LMRUN_TESTING_SOURCE_DIR ${CMAKE_CURRENT_LIST_DIR}/../framework/testing)
endif()

# The Release flags on `target` when no build type is set ($<CONFIG:> is true for an empty one).
function(_lmrun_optimise_without_build_type target)
  separate_arguments(flags UNIX_COMMAND "${CMAKE_CXX_FLAGS_RELEASE}")
  foreach(flag IN LISTS flags)
    target_compile_options(${target} PRIVATE $<$<CONFIG:>:${flag}>)
  endforeach()
endfunction()

# lmrun_add_plugin(NAME SOURCES a.cpp b.cpp ...)
#
# Builds a plugin as a MODULE library `lmrun-NAME.so` (target lmrun_plugin_NAME) against
# lmrun::sdk, with hidden visibility so that only the `lmrun_plugin` entry point is exported. In
# lmrun's own tree the library lands in the build's plugin folder and installs with lmrun; out of
# tree it lands in the caller's build folder, to be named by LMRUN_PLUGIN_PATH, `[plugins] paths`
# or `--plugin-dir`.
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
  _lmrun_optimise_without_build_type(${target})
  # An unresolved symbol is a build error here, not a load error in front of a user.
  target_link_options(${target} PRIVATE -Wl,--no-undefined)
  if(DEFINED LMRUN_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${LMRUN_PLUGIN_OUTPUT_DIR})
    install(TARGETS ${target} LIBRARY DESTINATION ${LMRUN_PLUGIN_SUBDIR})
  endif()
endfunction()

# The conformance runner, `lmrun_conformance`: one executable per project, built from lmrun's
# testing sources with GoogleTest, shared by every lmrun_add_conformance_test() of the project.
function(_lmrun_conformance_runner)
  if(TARGET lmrun_conformance)
    return()
  endif()
  find_package(GTest QUIET)
  if(NOT TARGET GTest::gtest)
    message(FATAL_ERROR
      "lmrun_add_conformance_test: GoogleTest was not found; the conformance suites are "
      "GoogleTest suites. Install it (Debian: apt install libgtest-dev) or set GTest_DIR.")
  endif()
  set(dir ${LMRUN_TESTING_SOURCE_DIR})
  add_executable(lmrun_conformance
    ${dir}/conformance_main.cpp
    ${dir}/model_suite.cpp
    ${dir}/tokenizer_suite.cpp
    ${dir}/sampler_suite.cpp
    ${dir}/callback_suite.cpp)
  target_link_libraries(lmrun_conformance PRIVATE lmrun::sdk GTest::gtest ${CMAKE_DL_LIBS})
  _lmrun_optimise_without_build_type(lmrun_conformance)
endfunction()

# lmrun_add_conformance_test(TARGET lmrun_plugin_NAME
#     [KIND model|tokenizer|sampler|callback] [NAME name]
#     [SET key=value ...] [OPTIONS key=value ...]
#     [TEST_NAME name] [LABELS label ...])
#
# Adds a ctest entry (default name conformance.NAME[.name], label "conformance") that runs lmrun's
# conformance suites on the plugin TARGET builds: every registration of a kind with a suite, or
# those of KIND and NAME; SET gives plugin parameters (text converted by each parameter's declared
# type; required ones must be set), OPTIONS the suites' settings (vocab_size, sequence_length,
# num_classes, pad_id, batch_size, seed, tolerance, exact_round_trip, corpus). What each suite
# checks: lmrun/testing/conformance.h. The test runs in the calling CMakeLists.txt's folder, so
# relative paths in SET and OPTIONS resolve against it. Calls enable_testing() for the caller's
# folder; a project whose tests live in subfolders calls it at its top too. No-op when
# BUILD_TESTING is OFF.
#
#   lmrun_add_conformance_test(TARGET lmrun_plugin_bigram)
#   lmrun_add_conformance_test(TARGET lmrun_plugin_transformer NAME transformer
#                              SET n_layer=2 n_embd=32 OPTIONS vocab_size=65 sequence_length=64)
function(lmrun_add_conformance_test)
  cmake_parse_arguments(ARG "" "TARGET;KIND;NAME;TEST_NAME" "SET;OPTIONS;LABELS" ${ARGN})
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "lmrun_add_conformance_test: unexpected arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT ARG_TARGET)
    message(FATAL_ERROR "lmrun_add_conformance_test: TARGET (the plugin's target) is required")
  endif()
  if(NOT TARGET ${ARG_TARGET})
    message(FATAL_ERROR "lmrun_add_conformance_test: no target ${ARG_TARGET}; "
                        "lmrun_add_plugin(NAME ...) makes lmrun_plugin_NAME")
  endif()
  if(DEFINED BUILD_TESTING AND NOT BUILD_TESTING)
    return()
  endif()
  _lmrun_conformance_runner()

  if(NOT ARG_TEST_NAME)
    string(REGEX REPLACE "^lmrun_plugin_" "" ARG_TEST_NAME ${ARG_TARGET})
    set(ARG_TEST_NAME conformance.${ARG_TEST_NAME})
    if(ARG_NAME)
      set(ARG_TEST_NAME ${ARG_TEST_NAME}.${ARG_NAME})
    endif()
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS conformance)
  endif()

  set(command lmrun_conformance --plugin $<TARGET_FILE:${ARG_TARGET}>)
  if(ARG_KIND)
    list(APPEND command --kind ${ARG_KIND})
  endif()
  if(ARG_NAME)
    list(APPEND command --name ${ARG_NAME})
  endif()
  foreach(assignment IN LISTS ARG_SET)
    list(APPEND command --set ${assignment})
  endforeach()
  foreach(assignment IN LISTS ARG_OPTIONS)
    list(APPEND command --option ${assignment})
  endforeach()

  enable_testing()
  add_test(NAME ${ARG_TEST_NAME} COMMAND ${command}
           WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(${ARG_TEST_NAME} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT 600)
endfunction()
