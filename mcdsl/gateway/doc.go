// Package gateway serves a service's REST API from its proto: the HTTP
// rules kept beside the .proto (a grpc_api_configuration YAML) generate
// grpc-gateway handlers, and this package runs them in process against
// the service's gRPC server (mcdsl/grpcserver.Server.Local), so every REST
// call passes the same method maps, authentication, error mapping and
// metrics as a gRPC call, and the two faces cannot drift apart.
//
// The JSON is the platform's: snake_case proto field names, every field
// present (unset ones as zero values or null), 64-bit integers as numbers,
// unknown fields and trailing data refused, bodies bounded and only
// accepted as application/json (415 otherwise: a form or text body is
// what another origin's page can make a browser send without a CORS
// preflight); errors are
// {"error": "..."} with the status mcdsl/apierr gives the gRPC code, a
// Retry-After header from RetryInfo details and a Bearer challenge on
// 401. Successful answers are 200 unless Options.Status says otherwise
// (201 for creations, 204 with no body for deletions). Where a request
// takes query parameters (fields not bound by the path or body, such as a
// list's filters), an unknown one is refused rather than ignored. Only the
// Authorization header reaches gRPC metadata, and no metadata comes back
// as headers.
package gateway
