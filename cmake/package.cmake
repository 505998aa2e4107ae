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
set(CPACK_PACKAGE_CONTACT "The kbsim authors <kbsim@localhost>")
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
include(CPack)
