# Debian's hardening flags, as `DEB_BUILD_MAINT_OPTIONS=hardening=+all
# dpkg-buildflags` gives them on Debian 12 (gcc there builds PIE by
# default): stack protector, fortified libc calls, format checks, a
# read-only GOT (relro + bindnow). Every optimised build gets them, so the
# tests run the program the package ships; the sanitizer and fuzz builds
# bring their own instrumentation, and _FORTIFY_SOURCE needs -O, so those
# and Debug builds go without. KBSIM_HARDENING=OFF turns them off.
option(KBSIM_HARDENING "Build with Debian's hardening flags (dpkg-buildflags)" ON)
if(KBSIM_HARDENING AND KBSIM_SANITIZE STREQUAL "" AND NOT KBSIM_FUZZ
   AND NOT CMAKE_BUILD_TYPE STREQUAL "Debug")
  add_compile_options(-fstack-protector-strong -Wformat
                      -Werror=format-security -Wdate-time)
  add_compile_definitions(_FORTIFY_SOURCE=2)
  add_link_options(-Wl,-z,relro -Wl,-z,now)
endif()
