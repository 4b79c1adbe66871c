// Command mcat is MCAT, the login-policy tester: a small web app that
// submits a login to MCIAS with a chosen service_name and tags and shows
// what MCIAS decided. It keeps no state: init and status say so.
package main

import (
	"git.metacircular.net/metacircular/mcat/internal/tester"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcdsl/service"
)

var version = "dev"

func main() { service.Main(def()) }

func def() service.Def[*tester.Config] {
	return service.Def[*tester.Config]{
		Name:    tester.ServiceName,
		Short:   "MCAT, the MCIAS login-policy tester",
		Version: version,
		Load:    tester.LoadConfig,
		Logging: func(c *tester.Config) logging.Config { return c.Log },
		ServerLong: `server serves the tester's page on server.listen_addr (TLS 1.3, or plain HTTP
behind an L7 proxy with plain_http): a form that submits one login to the
MCIAS at mcias.server_url with the service_name and tags typed into it and
shows what MCIAS decided. Tokens it obtains are revoked at once.`,
		Build: tester.Build,
	}
}
