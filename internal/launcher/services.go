package launcher

// Platform returns the platform services in the order Up starts them: the
// bootstrap order (MCIAS, Metacrypt, mc-proxy, MCR, MCNS, MCP) except that
// the local mc-proxy starts after the services it fronts. Each service
// joins the platform by adding its Service here once it exists.
func Platform() []Service {
	return []Service{
		MCIAS,
		Metacrypt,
		MCR,
		MCNS,
		// mc-proxy belongs before MCR and MCNS in the bootstrap order, but
		// its seed routes need their backends' ports: it starts last.
		MCProxy,
		MCP,
	}
}
