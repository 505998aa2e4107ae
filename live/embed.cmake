# Writes the file IN as a C string named NAME into OUT, so the console page
# ships inside the kbsim binary: cmake -DIN=... -DOUT=... -DNAME=... -P embed.cmake
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "(..)" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}" "/* Generated from ${IN} by live/embed.cmake; do not edit. */\n"
     "const char ${NAME}[] = {${bytes}0x00};\n")
