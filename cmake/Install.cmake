# Install rules for the lmrun CMake package: `find_package(lmrun CONFIG)` gives lmrun::sdk,
# lmrun_add_plugin() and lmrun_add_conformance_test(), so a plugin builds and tests out of tree
# against an installed lmrun. Included at the end of the top-level CMakeLists.txt, after every
# target exists.
#
#   <prefix>/bin/lmrun                               framework/CMakeLists.txt
#   <prefix>/lib/lmrun/plugins/lmrun-*.so            LmrunPlugin.cmake, one per in-tree plugin
#   <prefix>/include/lmrun/*.h, util/*.h             the SDK headers
#   <prefix>/include/lmrun/testing/*.h               lmrun::testing: the conformance suites' API
#   <prefix>/lib/cmake/lmrun/lmrunConfig.cmake       find_dependency(Torch), the targets, helpers
#   <prefix>/lib/cmake/lmrun/lmrunConfigVersion.cmake
#   <prefix>/lib/cmake/lmrun/lmrunTargets.cmake      lmrun::sdk (INTERFACE: headers + torch)
#   <prefix>/lib/cmake/lmrun/LmrunPlugin.cmake       lmrun_add_plugin(), lmrun_add_conformance_test()
#   <prefix>/share/lmrun/testing/*.cpp, *.h          the conformance runner's sources, built by
#                                                    the first lmrun_add_conformance_test()
#   <prefix>/share/lmrun/examples/                   examples/: out-of-tree plugins of each kind
#   <prefix>/share/lmrun/plugins/<kind>/<name>/README.md   each built-in plugin's parameters
include(CMakePackageConfigHelpers)

set(LMRUN_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/lmrun)

# ---------------------------------------------------------------------------------------------
# The SDK: headers and the exported INTERFACE target

install(DIRECTORY ${PROJECT_SOURCE_DIR}/framework/include/lmrun
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h")

install(TARGETS lmrun_sdk EXPORT lmrunTargets)
install(EXPORT lmrunTargets
  NAMESPACE lmrun::
  FILE lmrunTargets.cmake
  DESTINATION ${LMRUN_CMAKE_INSTALL_DIR})

# ---------------------------------------------------------------------------------------------
# lmrun::testing: the runner's sources, compiled in the consumer's build (with its GoogleTest)

set(LMRUN_TESTING_SUBDIR ${CMAKE_INSTALL_DATADIR}/lmrun/testing)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/framework/testing/
  DESTINATION ${LMRUN_TESTING_SUBDIR}
  FILES_MATCHING PATTERN "*.cpp" PATTERN "*.h")

# ---------------------------------------------------------------------------------------------
# Documentation a plugin author reads: the examples, and the built-in plugins' READMEs

install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/
  DESTINATION ${CMAKE_INSTALL_DATADIR}/lmrun/examples
  PATTERN "build*" EXCLUDE)  # a build folder someone made inside examples/
file(GLOB plugin_readmes RELATIVE ${PROJECT_SOURCE_DIR}/plugins
  ${PROJECT_SOURCE_DIR}/plugins/*/*/README.md)
foreach(readme IN LISTS plugin_readmes)
  get_filename_component(folder ${readme} DIRECTORY)  # <kind>/<name>
  install(FILES ${PROJECT_SOURCE_DIR}/plugins/${readme}
    DESTINATION ${CMAKE_INSTALL_DATADIR}/lmrun/plugins/${folder})
endforeach()

# ---------------------------------------------------------------------------------------------
# The package: config, version, and the plugin helper beside them

# Recorded so that a consumer finds the LibTorch this lmrun was built with, and is told at configure
# time (not at plugin load) when it finds another major.minor.
set(LMRUN_TORCH_VERSION ${Torch_VERSION})
set(LMRUN_TORCH_DIR ${Torch_DIR})

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/lmrunConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/lmrunConfig.cmake
  INSTALL_DESTINATION ${LMRUN_CMAKE_INSTALL_DIR}
  PATH_VARS LMRUN_PLUGIN_SUBDIR CMAKE_INSTALL_BINDIR LMRUN_TESTING_SUBDIR
  NO_CHECK_REQUIRED_COMPONENTS_MACRO)

write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/cmake/lmrunConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)

install(FILES
  ${PROJECT_BINARY_DIR}/cmake/lmrunConfig.cmake
  ${PROJECT_BINARY_DIR}/cmake/lmrunConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/LmrunPlugin.cmake
  DESTINATION ${LMRUN_CMAKE_INSTALL_DIR})

# ---------------------------------------------------------------------------------------------
# The installed executable finds a LibTorch outside the system's library folders (a downloaded
# LibTorch 2.x with CUDA) the way the build-tree one does; a no-op for Debian's libtorch-dev.
set_target_properties(lmrun PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
