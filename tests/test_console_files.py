"""The console is ES modules served as they are: each one reachable, as JavaScript, under the CSP."""
from __future__ import annotations

import re

from tests.kefu_harness import REPO

CONSOLE = REPO / "aggregator" / "console_static"


async def test_console_modules_are_served_as_javascript_under_the_csp(make_daemon, http):
    d = await make_daemon().start()
    async with http.get(d.url + "/console/") as r:
        assert '<script type="module" src="console.js">' in await r.text()
    seen, todo = set(), ["console.js"]
    while todo:  # every module the entry point reaches, as the browser would load them
        name = todo.pop()
        seen.add(name)
        async with http.get(f"{d.url}/console/{name}") as r:
            assert r.status == 200, name
            assert r.content_type == "application/javascript", name
            assert "script-src" not in r.headers["Content-Security-Policy"]  # default-src 'self' covers modules
            assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
            body = await r.text()
        assert body == (CONSOLE / name).read_text()  # no build step: the file as it is
        todo += [m for m in re.findall(r"^import .* from '\./([\w-]+\.js)';$", body, re.M) if m not in seen]
    assert seen == {p.name for p in CONSOLE.glob("*.js")}  # no module left unreached
    for bad in ("/console/sub/x.js", "/console/..%2Fweb.py", "/console/.hidden.js", "/console/nope.js"):
        async with http.get(d.url + bad) as r:
            assert r.status == 404, bad
