// A small admin-like site for the browser test (issue 11): login, an admin with ~20 assets per
// page, an "add post" form, a blog, a contact form, a cart, a JSON API and a webhook.
// Usage: node site-app.mjs  (prints "site listening on http://127.0.0.1:PORT")
import http from "node:http";

const assets = (n) =>
  Array.from({ length: n }, (_, k) => {
    const kind = k % 4;
    if (kind === 0) return `<script src="/static/admin/js/mod${k}.js"></script>`;
    if (kind === 1) return `<link rel="stylesheet" href="/static/admin/css/style${k}.css">`;
    if (kind === 2) return `<img src="/static/admin/img/icon${k}.png" alt="">`;
    return `<link rel="preload" as="font" href="/static/admin/fonts/f${k}.woff2" crossorigin>`;
  }).join("\n");

const page = (title, body, n = 20) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>${assets(n)}</head>` +
  `<body><h1>${title}</h1>${body}</body></html>`;

const form = (action, fields, button) =>
  `<form method="post" action="${action}">${fields
    .map((f) => `<label>${f} <input name="${f}"></label>`)
    .join("")}<button type="submit">${button}</button></form>`;

const png = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
  "hex",
);

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  const p = url.pathname;
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const html = (status, text) => {
      res.writeHead(status, { "content-type": "text/html; charset=utf-8" });
      res.end(text);
    };
    const redirect = (to) => {
      res.writeHead(302, { location: to });
      res.end();
    };
    if (p.startsWith("/static/")) {
      const type = p.endsWith(".js") ? "application/javascript" : p.endsWith(".css") ? "text/css"
        : p.endsWith(".png") ? "image/png" : "font/woff2";
      res.writeHead(200, { "content-type": type, "cache-control": "no-store" });
      return res.end(p.endsWith(".png") ? png : p.endsWith(".js") ? "void 0;" : "");
    }
    if (p === "/favicon.ico") return html(404, "no favicon");
    if (p === "/admin/login/" && req.method === "POST") {
      res.writeHead(302, { location: "/admin/", "set-cookie": "sessionid=abc123; Path=/; HttpOnly" });
      return res.end();
    }
    if (p === "/admin/login/") return html(200, page("Log in", form("/admin/login/", ["username", "password"], "Log in"), 6));
    if (p === "/admin/") return html(200, page("Site administration", `<a id="posts" href="/admin/blog/post/">Posts</a>`));
    if (p === "/admin/blog/post/") return html(200, page("Posts", `<a id="add" href="/admin/blog/post/add/">Add post</a>`));
    if (p === "/admin/blog/post/add/" && req.method === "POST") return redirect("/admin/blog/post/?saved=1");
    if (p === "/admin/blog/post/add/") {
      return html(200, page("Add post", form("/admin/blog/post/add/", ["title", "slug", "content"], "Save")));
    }
    if (p === "/admin/logout/" && req.method === "POST") return redirect("/admin/login/");
    if (p.startsWith("/blog/")) return html(200, page(`Blog ${p}`, `<p>O'Brien writes about SQL: select a product.</p><a href="/contact/">contact</a>`, 8));
    if (p === "/contact/" && req.method === "POST") return redirect("/contact/?sent=1");
    if (p === "/contact/") return html(200, page("Contact", form("/contact/", ["name", "email", "message"], "Send"), 8));
    if (p === "/cart/add/" && req.method === "POST") return redirect("/cart/");
    if (p === "/cart/") return html(200, page("Cart", form("/cart/add/", ["item"], "+"), 8));
    if (p === "/api/orders/") {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ ok: true, received: body.length }));
    }
    if (p === "/paypal/ipn/") return html(200, "OK");
    html(200, page("Home", `<a href="/blog/hello/">Hello</a>`, 8));
  });
});
server.listen(0, "127.0.0.1", () => console.log(`site listening on http://127.0.0.1:${server.address().port}`));
