// Swagger UI reading this service's own description, one directory up from /docs/.
window.ui = SwaggerUIBundle({ url: "../openapi.json", dom_id: "#swagger-ui", deepLinking: true });
