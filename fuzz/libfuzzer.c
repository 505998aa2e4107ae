/*
 * libfuzzer.c - the libFuzzer entry points of one target. fuzz/CMakeLists.txt
 * compiles this file once per target with FUZZ_ENTRY set to the target's
 * function in targets.c (e.g. -DFUZZ_ENTRY=fuzz_ntlm).
 */
#include <stddef.h>
#include <stdint.h>

#include "targets.h"

#ifndef FUZZ_ENTRY
#error "compile with -DFUZZ_ENTRY=<target function>"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs once before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  fuzz_init();
  return 0;
}

/* Runs one input; the target aborts on a broken property. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  return FUZZ_ENTRY(data, size);
}
