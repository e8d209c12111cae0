// Starts Swagger UI on the page's element #swagger-ui, for the document its
// data-openapi-url names. A file of its own, not an inline script, so the page's
// Content-Security-Policy allows scripts from this origin only.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    // The token stays in this page's memory: never written to localStorage, where any
    // script of the origin could read it after the tab is closed.
    persistAuthorization: false,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout"
  });
})();
