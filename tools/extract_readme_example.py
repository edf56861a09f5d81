#!/usr/bin/env python3
"""Writes the README's API example (the ```cpp block after `<!-- api-example -->`) to a file,
so the build compiles exactly what the README shows."""
import pathlib
import re
import sys

readme, output = sys.argv[1], sys.argv[2]
text = pathlib.Path(readme).read_text(encoding="utf-8")
match = re.search(r"<!-- api-example -->\s*```cpp\n(.*?)```", text, re.S)
if not match:
    sys.exit(f"extract_readme_example: no ```cpp block after <!-- api-example --> in {readme}")
pathlib.Path(output).write_text(match.group(1), encoding="utf-8")
