# kbsim_public_headers(TARGET HEADER...): the folder's public headers, the
# only ones other folders' targets can reach.
#
# Each header is linked into ${CMAKE_BINARY_DIR}/include/TARGET/FOLDER/,
# which becomes TARGET's PUBLIC include directory. A target that links
# TARGET includes them as "FOLDER/header.h"; a header left out of the list
# is internal: only the folder's own files reach it, by its bare name (the
# compiler looks beside the including file first). tests/ and fuzz/ are
# white-box and see the whole source tree (tests/CMakeLists.txt).
function(kbsim_public_headers target)
  file(RELATIVE_PATH folder ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  set(dir ${CMAKE_BINARY_DIR}/include/${target})
  file(REMOVE_RECURSE ${dir})
  file(MAKE_DIRECTORY ${dir}/${folder})
  foreach(header IN LISTS ARGN)
    if(NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${header})
      message(FATAL_ERROR "kbsim_public_headers: ${folder}/${header} does not exist")
    endif()
    file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR}/${header}
         ${dir}/${folder}/${header} SYMBOLIC)
  endforeach()
  target_include_directories(${target} PUBLIC ${dir})
endfunction()
