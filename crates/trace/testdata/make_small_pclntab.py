#!/usr/bin/env python3
"""Cuts a small .gopclntab out of a real Go binary: the header of the real
table, the first N functions (their entries and names), a minimal _func record
each (entry offset, name offset, zeros), and the real end entry of function
N. Used to make the fuzz seeds and the unit-test fixtures:

    python3 make_small_pclntab.py target/workloads/go1.27/workload 16 out.bin
"""
import struct
import subprocess
import sys

binary, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(binary, "rb").read()
sections = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True).stdout
line = next(l for l in sections.splitlines() if ".gopclntab" in l)
fields = line.split("]")[1].split()
offset, size = int(fields[3], 16), int(fields[4], 16)
tab = data[offset:offset + size]
magic, = struct.unpack_from("<I", tab, 0)
words = list(struct.unpack_from("<8Q", tab, 8))
nfunc, funcname_off, pcln_off = words[0], words[3], words[7]
functab = tab[pcln_off:]
names = bytearray()
entries = []
for i in range(count):
    entry, func_off = struct.unpack_from("<II", functab, 8 * i)
    name_off, = struct.unpack_from("<i", functab, func_off + 4)
    name = tab[funcname_off + name_off:].split(b"\0", 1)[0]
    entries.append((entry, len(names)))
    names += name + b"\0"
end_entry, = struct.unpack_from("<I", functab, 8 * count)
header_len = 8 + 8 * 8
new_funcname_off = header_len
new_pcln_off = (new_funcname_off + len(names) + 7) // 8 * 8
func_table_len = 8 * (count + 1)
records_off = func_table_len
words[0] = count
words[3] = new_funcname_off
words[7] = new_pcln_off
blob = bytearray(tab[:8]) + struct.pack("<8Q", *words) + names
blob += b"\0" * (new_pcln_off - len(blob))
func = bytearray()
for i, (entry, name_off) in enumerate(entries):
    func += struct.pack("<II", entry, records_off + 48 * i)
func += struct.pack("<I", end_entry) + b"\0" * 4
for entry, name_off in entries:
    func += struct.pack("<Ii", entry, name_off) + b"\0" * 40
blob += func
open(out, "wb").write(blob)
print(f"{out}: magic {magic:#x}, {count} of {nfunc} functions, {len(blob)} bytes")
