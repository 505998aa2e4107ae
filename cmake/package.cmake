# The Debian package: `cpack -G DEB` in the build directory writes
# kbsim_<version>_<arch>.deb. Configure with -DCMAKE_INSTALL_PREFIX=/usr
# for a package (the man page then names /usr/share/kbsim, where the package
# puts the catalogue; kbsim finds it beside itself either way).
# dpkg-shlibdeps reads the program's libraries into Depends, so apt-get
# install ./kbsim_*.deb pulls them in.
set(CPACK_GENERATOR "DEB" CACHE STRING "cpack's default generator")
set(CPACK_PACKAGE_NAME "kbsim")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_VENDOR "The kbsim authors")
# The maintainer: the project has no mailbox and no person signs for the
# package, so the address is under .invalid (RFC 2606), which says so to
# anyone who tries it; lintian accepts it, unlike localhost. Reports go to
# the repository's issues.
set(CPACK_PACKAGE_CONTACT "The kbsim authors <kbsim@kbsim.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "reproduce KB 942638: Communicator's Outlook Integration Error behind ISA 2006")
string(JOIN "\n" CPACK_PACKAGE_DESCRIPTION
  "kbsim runs Office Communicator 2007, an ISA Server 2006 web listener and"
  "Exchange 2007 EWS in one process, on real loopback sockets with real NTLM,"
  "and reproduces deterministically the bug KB 942638 fixes: a"
  "re-authenticating POST forwarded without its body, a SOAP 500, the"
  "Outlook Integration Error. It writes transcripts, pcaps, JSON and HTML"
  "reports, and serves a live array for trainers.")
set(CPACK_RESOURCE_FILE_LICENSE "${PROJECT_SOURCE_DIR}/LICENSE")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# kbsim analyze reads captures through tshark (Wireshark's dissectors:
# TCP reassembly, HTTP, TLS with keys); without it, it says so in one line
# and still reads HAR files.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "tshark")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion")
set(CPACK_STRIP_FILES ON)
# The licence where Debian keeps it, machine-readable (DEP-5).
configure_file(${PROJECT_SOURCE_DIR}/cmake/copyright.in
               ${CMAKE_BINARY_DIR}/copyright COPYONLY)
install(FILES ${CMAKE_BINARY_DIR}/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
# Debian's changelog (cmake/changelog), compressed as policy wants it.
# kbsim is packaged by its own authors, a native package in Debian's terms,
# so the file is changelog.gz: lintian asks a native package for that name
# (changelog.Debian.gz is for a package made from someone else's release).
# Its newest entry must be this version.
file(STRINGS ${PROJECT_SOURCE_DIR}/cmake/changelog kbsim_changelog_top
     LIMIT_COUNT 1)
if(NOT kbsim_changelog_top MATCHES "^kbsim \\(${PROJECT_VERSION}\\) ")
  message(FATAL_ERROR "cmake/changelog: its first entry is not version "
          "${PROJECT_VERSION}; add one for it")
endif()
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/changelog.gz
  COMMAND gzip -9nc ${PROJECT_SOURCE_DIR}/cmake/changelog > ${CMAKE_BINARY_DIR}/changelog.gz
  DEPENDS ${PROJECT_SOURCE_DIR}/cmake/changelog
  COMMENT "Compressing the Debian changelog")
add_custom_target(kbsim_changelog ALL DEPENDS ${CMAKE_BINARY_DIR}/changelog.gz)
install(FILES ${CMAKE_BINARY_DIR}/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})
include(CPack)
