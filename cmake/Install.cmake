# Install rules for the lmrun CMake package: `find_package(lmrun CONFIG)` gives lmrun::sdk and
# lmrun_add_plugin(), so a plugin builds out of tree against an installed lmrun. Included at the
# end of the top-level CMakeLists.txt, after every target exists.
#
#   <prefix>/bin/lmrun                               framework/CMakeLists.txt
#   <prefix>/lib/lmrun/plugins/lmrun-*.so            LmrunPlugin.cmake, one per in-tree plugin
#   <prefix>/include/lmrun/*.h                       the SDK headers
#   <prefix>/lib/cmake/lmrun/lmrunConfig.cmake       find_dependency(Torch), the targets, the helper
#   <prefix>/lib/cmake/lmrun/lmrunConfigVersion.cmake
#   <prefix>/lib/cmake/lmrun/lmrunTargets.cmake      lmrun::sdk (INTERFACE: headers + torch)
#   <prefix>/lib/cmake/lmrun/LmrunPlugin.cmake       lmrun_add_plugin()
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
# The package: config, version, and the plugin helper beside them

# Recorded so that a consumer finds the LibTorch this lmrun was built with, and is told at configure
# time (not at plugin load) when it finds another major.minor.
set(LMRUN_TORCH_VERSION ${Torch_VERSION})
set(LMRUN_TORCH_DIR ${Torch_DIR})

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/lmrunConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/lmrunConfig.cmake
  INSTALL_DESTINATION ${LMRUN_CMAKE_INSTALL_DIR}
  PATH_VARS LMRUN_PLUGIN_SUBDIR CMAKE_INSTALL_BINDIR
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
