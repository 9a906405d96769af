/* dash_assets: the dashboard page's parts, embedded into the binary at
 * build time by proxy/embed.py (see proxy/meson.build). Each array holds
 * the bytes and a NUL that _len does not count. */
#ifndef TOKENTAP_DASH_ASSETS_H
#define TOKENTAP_DASH_ASSETS_H

#include <stddef.h>

/* proxy/serve/dash.html: the body of the page (sections, tables, canvases). */
extern const unsigned char dash_asset_html[];
extern const size_t dash_asset_html_len;

/* proxy/serve/dash.js: reads /tokentap/events and draws everything. */
extern const unsigned char dash_asset_js[];
extern const size_t dash_asset_js_len;

/* proxy/serve/dash.css: the page's style. */
extern const unsigned char dash_asset_css[];
extern const size_t dash_asset_css_len;

#endif
