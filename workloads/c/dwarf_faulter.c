/* A C program for memlens trace's DWARF naming tests (built by
 * memlens_testkit::dwarf_c_program with -g, then stripped of .symtab).
 *
 *   dwarf_faulter MIB ROUNDS
 *
 * Prints "READY <pid>", waits for one line on stdin (the tracer attaches in
 * between), then ROUNDS times maps MIB MiB of anonymous memory, writes one byte
 * per 4 KiB page (dwarf_touch_pages, called by dwarf_fault_round) and unmaps
 * it; prints "DONE faults=<pages touched>" and exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

__attribute__((noinline)) void dwarf_touch_pages(volatile char *p, unsigned long bytes) {
  for (unsigned long i = 0; i < bytes; i += 4096) p[i] = 1;
}

__attribute__((noinline)) unsigned long dwarf_fault_round(unsigned long bytes) {
  char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(1);
  }
  dwarf_touch_pages(p, bytes);
  munmap(p, bytes);
  return bytes / 4096;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: dwarf_faulter MIB ROUNDS\n");
    return 2;
  }
  unsigned long bytes = strtoul(argv[1], NULL, 10) << 20;
  int rounds = atoi(argv[2]);
  printf("READY %d\n", (int)getpid());
  fflush(stdout);
  char line[16];
  if (!fgets(line, sizeof line, stdin)) return 1;
  unsigned long faults = 0;
  for (int r = 0; r < rounds; r++) faults += dwarf_fault_round(bytes);
  printf("DONE faults=%lu\n", faults);
  return 0;
}
