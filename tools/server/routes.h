/* routes.h: reading the endpoints' request bodies and writing their JSON (routes.c). The parse
 * functions return 0, or an HTTP status with the reason in why. */
#ifndef P3_SERVER_ROUTES_H
#define P3_SERVER_ROUTES_H

#include "server.h"

int route_parse_chat(phi3c_model *model, int n_ctx, const js_node *body, request *req, char *why,
                     size_t why_len);
int route_parse_completion(phi3c_model *model, int n_ctx, const js_node *body, request *req,
                           char *why, size_t why_len);
int route_tokenize(phi3c_model *model, const js_node *body, sbuf *out, char *why, size_t why_len);
int route_detokenize(phi3c_model *model, const js_node *body, sbuf *out, char *why, size_t why_len);
void route_models(const char *model, long long created, sbuf *out);

#endif /* P3_SERVER_ROUTES_H */
