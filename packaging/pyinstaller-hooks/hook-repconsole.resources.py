"""Bundle the data files of ``repconsole.resources`` (icons, SVG, sounds).

``collect_data_files`` cannot be used: it derives each file's destination by
stripping the package's dotted path from its directory, which assumes the
package lives in a directory of the same name, and ``resources/`` does not.
The destination is therefore spelled out: ``repconsole/resources/...`` is
where PyInstaller's resource reader looks for ``repconsole.resources``.
"""

from __future__ import annotations

from pathlib import Path

from PyInstaller.depend.imphookapi import PostGraphAPI

DEST = Path("repconsole", "resources")


def hook(hook_api: PostGraphAPI) -> None:
    datas: list[tuple[str, str]] = []
    for package_dir in map(Path, hook_api.__path__):
        for source in sorted(package_dir.rglob("*")):
            relative = source.relative_to(package_dir)
            if (
                source.is_file()
                and source.suffix not in {".py", ".pyc"}
                and "__pycache__" not in relative.parts
                and not any(part.startswith(".") for part in relative.parts)
            ):
                datas.append((str(source), str(DEST / relative.parent)))
    if not datas:
        raise RuntimeError(f"no resource files found in {hook_api.__path__}")
    hook_api.add_datas(datas)
