package launcher

// Platform returns the platform services in bootstrap order, the order Up
// starts them in: MCIAS, Metacrypt, mc-proxy, MCR, MCNS, then MCP. Each
// service joins the platform by adding its Service here once it exists.
func Platform() []Service {
	return []Service{
		MCIAS,
		// Metacrypt, mc-proxy, MCR, MCNS and MCP join here as they land.
	}
}
