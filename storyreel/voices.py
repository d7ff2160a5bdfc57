"""Which narration languages this machine can speak: the voices of the installed espeak-ng.

The API checks a request's ``language`` here before starting a run (a 422 naming the installed
languages), so a run never fails in its last stage on a voice that does not exist. The API and
the workers run the same image (deploy/Dockerfile), so the API's list is the workers' list.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache

_OTHER = re.compile(r"\(([a-z0-9-]+) \d+\)")


def parse_voices(listing: str) -> frozenset[str]:
    """Language codes ``espeak-ng -v`` accepts, from ``espeak-ng --voices``: each voice's
    language, the languages it also serves ("(en 2)") and its file's name ("gmw/en" -> en)."""
    codes: set[str] = set()
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5:
            continue
        codes.add(fields[1].lower())
        codes.add(fields[4].rsplit("/", 1)[-1].lower())
        codes.update(_OTHER.findall(line))
    return frozenset(codes)


@lru_cache(maxsize=1)
def installed_languages() -> frozenset[str] | None:
    """The installed espeak-ng's languages; None when espeak-ng is not installed."""
    binary = shutil.which("espeak-ng") or shutil.which("espeak")
    if binary is None:
        return None
    try:
        result = subprocess.run(
            [binary, "--voices"], capture_output=True, text=True, timeout=20, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_voices(result.stdout)
