#!/usr/bin/env bash
# Starts nginx + ModSecurity 3 + OWASP CRS (Debian packages; installed when missing) as a
# reverse proxy on 127.0.0.1:PORT in front of UPSTREAM, paranoia level 1, blocking mode.
# Prints "modsecurity listening on http://127.0.0.1:PORT"; stop it with `kill $(cat DIR/nginx.pid)`.
# PLAIN=1: the same nginx without ModSecurity (a plain reverse proxy, the speed reference).
# TLS_CERT / TLS_KEY: terminate TLS with this PEM pair (HTTP/1.1). NGINX_WORKERS=N: N worker
# processes (default: auto, one per core).
#   bench/modsec/start.sh DIR PORT UPSTREAM_HOST:PORT
set -euo pipefail
dir=$1 port=$2 upstream=$3
if [ "${PLAIN:-0}" = 1 ]; then
  command -v nginx >/dev/null || { echo "installing nginx (Debian package)..." >&2; (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx) >/dev/null; }
elif [ ! -f /usr/lib/nginx/modules/ngx_http_modsecurity_module.so ] || [ ! -d /usr/share/modsecurity-crs/rules ]; then
  echo "installing nginx + ModSecurity + CRS (Debian packages)..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-http-modsecurity modsecurity-crs) >/dev/null
fi
mkdir -p "$dir/tmp"
unicode=$(ls /etc/nginx/unicode.mapping /usr/share/nginx/docs/modsecurity/unicode.mapping 2>/dev/null | head -1 || true)
cat >"$dir/modsec.conf" <<CONF
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction Reject
SecResponseBodyAccess Off
SecPcreMatchLimit 100000
SecPcreMatchLimitRecursion 100000
SecTmpDir $dir/tmp
SecDataDir $dir/tmp
SecAuditEngine Off
SecArgumentSeparator &
SecCookieFormat 0
SecUnicodeMapFile $unicode 20127
SecStatusEngine Off
Include /etc/modsecurity/crs/crs-setup.conf
Include /usr/share/modsecurity-crs/rules/*.conf
CONF
if [ "${PLAIN:-0}" = 1 ]; then load=""; waf=""; else
  load="load_module /usr/lib/nginx/modules/ngx_http_modsecurity_module.so;"
  waf="modsecurity on; modsecurity_rules_file $dir/modsec.conf;"
fi
ssl=""; tlsconf=""
if [ -n "${TLS_CERT:-}" ]; then
  ssl=" ssl"
  tlsconf="ssl_certificate ${TLS_CERT}; ssl_certificate_key ${TLS_KEY}; ssl_protocols TLSv1.2 TLSv1.3;"
fi
cat >"$dir/nginx.conf" <<CONF
$load
worker_processes ${NGINX_WORKERS:-auto};
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  upstream app { server $upstream; keepalive 64; }
  server {
    listen 127.0.0.1:$port$ssl;
    $tlsconf
    $waf
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
    }
  }
}
CONF
nginx -c "$dir/nginx.conf" -p "$dir"
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  sleep 0.1
done
echo "modsecurity listening on http://127.0.0.1:$port"
