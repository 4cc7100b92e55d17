#!/usr/bin/env python3
"""The configuration reference (doc/config-reference.md, one table row per key) made into
its two readers' forms:

  config_reference.py readme SOURCE README [--check]   the README's table, between its
                                                       config-reference markers (--check:
                                                       exit 1 when README is not current)
  config_reference.py man SOURCE OUT VERSION           the fulcrum.toml(5) man page
"""

import re
import sys

BEGIN = "<!-- config-reference:begin"
END = "<!-- config-reference:end -->"


def table_rows(source_text):
    """The table's lines: header, separator, one row per key."""
    return [line for line in source_text.splitlines() if line.startswith("|")]


def readme(source, readme_path, check):
    rows = table_rows(open(source, encoding="utf-8").read())
    text = open(readme_path, encoding="utf-8").read()
    start = text.index(BEGIN)
    start = text.index("\n", start) + 1
    end = text.index(END)
    updated = text[:start] + "\n".join(rows) + "\n" + text[end:]
    if check:
        if updated != text:
            print(f"{readme_path}: the configuration table differs from {source}; run "
                  f"tools/config_reference.py readme {source} {readme_path}", file=sys.stderr)
            return 1
        return 0
    open(readme_path, "w", encoding="utf-8").write(updated)
    return 0


def roff_text(markdown):
    """Markdown of a cell as roff: code in bold, links as their text, escapes."""
    text = markdown.replace("\\", "\\e")
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\\fB\1\\fR", text)
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">")
    # A line starting with . or ' would be a roff request.
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.M)


def cells(row):
    inner = row.strip()[1:-1]
    return [cell.strip() for cell in inner.split(" | ")]


def man(source, out, version):
    rows = table_rows(open(source, encoding="utf-8").read())[2:]
    lines = [
        f'.TH FULCRUM.TOML 5 "" "fulcrum {version}" "File Formats"',
        ".SH NAME",
        "fulcrum.toml \\- configuration file of the fulcrum TCP load balancer",
        ".SH SYNOPSIS",
        "\\fBfulcrum \\-c\\fR \\fIfulcrum.toml\\fR",
        ".SH DESCRIPTION",
        "A TOML file of tables: \\fB[log]\\fR, \\fB[admin]\\fR, \\fB[runtime]\\fR, and one "
        "\\fB[[service]]\\fR per listen address and service, each with its "
        "\\fB[[service.backend]]\\fR entries and optional \\fB[service.health]\\fR, "
        "\\fB[service.passive]\\fR and \\fB[service.limits]\\fR tables.",
        "The whole file is checked before anything runs (\\fBfulcrum \\-\\-check\\fR): every "
        "error names the file, line, column and key. SIGHUP re-reads it.",
        ".PP",
        "Durations are strings such as \\fB\"250ms\"\\fR, \\fB\"2s\"\\fR, \\fB\"1m30s\"\\fR; "
        "rates \\fB\"2000/s\"\\fR or \\fB\"20/m\"\\fR; addresses \\fB\"host:port\"\\fR or "
        "\\fB\"[ipv6]:port\"\\fR; networks \\fB\"10.0.0.0/8\"\\fR.",
    ]
    section = None
    for row in rows:
        table, key, kind, default, meaning = cells(row)
        if table != section:
            section = table
            lines += [".SH " + roff_text(table).replace("\\fB", "").replace("\\fR", "")]
        lines += [
            ".TP",
            f"{roff_text(key)} ({roff_text(kind)}; default {roff_text(default)})",
            roff_text(meaning),
        ]
    lines += [
        ".SH FILES",
        "\\fI/etc/fulcrum/fulcrum.toml\\fR",
        ".SH SEE ALSO",
        "\\fBfulcrum\\fR(1), \\fBsystemd.service\\fR(5)",
    ]
    open(out, "w", encoding="utf-8").write("\n".join(lines) + "\n")
    return 0


def main(argv):
    if len(argv) >= 4 and argv[1] == "readme":
        return readme(argv[2], argv[3], "--check" in argv[4:])
    if len(argv) == 5 and argv[1] == "man":
        return man(argv[2], argv[3], argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
