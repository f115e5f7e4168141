"""Fills a Solara asset cache from the npm registry: `python solara_cdn.py DIR` (make install-test).

Solara's page loads its front end (``@widgetti/solara-vuetify3-app``, ``requirejs``,
``font-awesome``) from ``_solara/cdn/<package>@<version>/...``, which Solara's own server
fetches from cdn.jsdelivr.net (the npm packages' files) and caches. On a host that cannot
reach that CDN the page stays blank; with ``SOLARA_ASSETS_PROXY_CACHE_DIR=DIR`` Solara finds
the files in DIR instead. This reads the packages the installed Solara asks for from its page
template and unpacks each ``npm pack`` into ``DIR/<package>@<version>/``.
"""

import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import solara.server
from solara.server import settings

template = (Path(solara.server.__file__).parent / "templates" / "solara.html.j2").read_text()
specs = set(re.findall(r"\{\{\s*cdn\s*\}\}/((?:@[\w.-]+/)?[\w.-]+@[\w.-]+)/", template))
specs.add(settings.assets.fontawesome_path.strip("/").split("/")[0])
specs.add("requirejs@2.3.6")  # solara/components/markdown.py and the page's require.js
target = Path(sys.argv[1]).resolve()
for spec in sorted(specs):
    dest = target / spec
    if dest.is_dir():
        continue
    with tempfile.TemporaryDirectory() as tmp:
        name = subprocess.run(
            ["npm", "pack", "--silent", spec], cwd=tmp, check=True, capture_output=True, text=True
        ).stdout.split()[-1]
        dest.mkdir(parents=True)
        with tarfile.open(Path(tmp) / name) as tar:
            for member in tar.getmembers():
                member.name = member.name.split("/", 1)[-1]  # package/dist/x.js -> dist/x.js
            tar.extractall(dest, filter="data")
    print(f"{spec} -> {dest}")
