// Swagger UI for the API docs page: the document's URL is on #swagger-ui (data-url).
// No validator badge (it would load an image from swagger.io) and no external requests.
window.addEventListener("DOMContentLoaded", function () {
  var node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.dataset.url,
    domNode: node,
    deepLinking: false,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
