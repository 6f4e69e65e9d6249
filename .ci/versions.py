"""Print the installed version of every requirement of the project (test extra included), and of the web stack
under gradio, on one line: a CI failure then names the versions that ran."""

import re
from importlib.metadata import PackageNotFoundError, requires, version


def names(dist: str) -> set[str]:
    return {re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0].lower() for r in requires(dist) or []}


wanted = (names("detector") - {"detector"}) | {"httpx", "uvicorn", "fastapi", "starlette", "albucore"}
found = []
for name in sorted(wanted):
    try:
        found.append(f"{name}=={version(name)}")
    except PackageNotFoundError:
        pass
print("CI: installed:", " ".join(found), flush=True)
