#!/usr/bin/env python3
"""Writes a C++ source defining `const std::string_view fulcrum::NAME` with the text of
INPUT, so that an asset (the status page) ships inside the binary.

usage: embed_text.py INPUT OUTPUT NAME
"""
import sys

source, output, name = sys.argv[1:4]
text = open(source, encoding="utf-8").read()
delimiter = "fulcrum_embedded"
if ")" + delimiter + '"' in text:
    sys.exit(f"{source} contains the raw string delimiter )" + delimiter)
with open(output, "w", encoding="utf-8") as out:
    out.write(f"// Generated from {source} by tools/embed_text.py: edit that file instead.\n")
    out.write("#include <string_view>\n\nnamespace fulcrum {\n\n")
    out.write(f"extern const std::string_view {name};\n")
    out.write(f'const std::string_view {name} = R"{delimiter}({text}){delimiter}";\n\n')
    out.write("}  // namespace fulcrum\n")
