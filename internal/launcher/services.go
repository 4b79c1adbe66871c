package launcher

// Platform returns the platform services in bootstrap order, the order Up
// starts them in: MCIAS, Metacrypt, mc-proxy, MCR, MCNS, then MCP. Each
// service joins the platform by adding its Service here once it exists.
func Platform() []Service {
	return []Service{
		MCIAS,
		// Metacrypt, mc-proxy and MCR join here, before MCNS, as they land.
		MCNS,
		// MCP joins here.
	}
}
