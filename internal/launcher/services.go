package launcher

// Platform returns the platform services in the order Up starts them: the
// bootstrap order (MCIAS, Metacrypt, mc-proxy, MCR, MCNS, MCP) except that
// the local mc-proxy starts after the services it fronts. Each service
// joins the platform by adding its Service here once it exists.
func Platform() []Service {
	return []Service{
		MCIAS,
		Metacrypt,
		// MCR joins here, before MCNS, as it lands.
		MCNS,
		// mc-proxy belongs before MCR and MCNS in the bootstrap order, but
		// its seed routes need MCNS's REST port: it starts after MCNS.
		MCProxy,
		// MCP joins here.
	}
}
