"""/openapi.json and /docs: the API described, from the code that serves it."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from service.openapi import openapi_document

blueprint = Blueprint("docs", __name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fitserve API</title>
<style>
 body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
 h1 { font-size: 1.6rem; } code { background: #f3f3f3; padding: 0 .25rem; }
 .op { border-top: 1px solid #ddd; padding: .4rem 0; }
 .method { display: inline-block; width: 4.5rem; font-weight: 600; text-transform: uppercase; }
 details pre { background: #f7f7f7; padding: .6rem; overflow: auto; font-size: 12px; }
</style></head>
<body><h1>fitserve API</h1>
<p>Generated from <a href="/openapi.json">/openapi.json</a>. Send
<code>Authorization: Bearer &lt;key&gt;</code> on every route but the health checks.</p>
<div id="ops">Loading…</div>
<script>
fetch("/openapi.json").then(r => r.json()).then(doc => {
  const ops = document.getElementById("ops"); ops.textContent = "";
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const row = document.createElement("div"); row.className = "op";
      const m = document.createElement("span"); m.className = "method"; m.textContent = method;
      const p = document.createElement("code"); p.textContent = path;
      const s = document.createElement("span"); s.textContent = " " + op.summary;
      row.append(m, p, s);
      for (const [media, body] of Object.entries((op.requestBody || {}).content || {})) {
        const ref = (body.schema["$ref"] || "").split("/").pop();
        const d = document.createElement("details");
        const sum = document.createElement("summary");
        sum.textContent = "body: " + media + (ref ? " (" + ref + ")" : "");
        const pre = document.createElement("pre");
        pre.textContent = JSON.stringify(ref ? doc.components.schemas[ref] : body.schema, null, 2);
        d.append(sum, pre); row.append(d);
      }
      ops.append(row);
    }
  }
});
</script></body></html>"""


@blueprint.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI document of this API."""
    return jsonify(openapi_document(current_app))


@blueprint.get("/docs")
def docs() -> Response:
    """A page that renders the OpenAPI document."""
    return Response(PAGE, mimetype="text/html")
