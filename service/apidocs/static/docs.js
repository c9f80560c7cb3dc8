"use strict";
// Starts the vendored Swagger UI from a file rather than an inline script, so /docs keeps the
// dashboard's Content-Security-Policy (scripts from this app only); no validator badge (a remote call).
(function () {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
