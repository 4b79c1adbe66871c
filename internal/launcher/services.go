package launcher

// Platform returns the platform services in bootstrap order, the order Up
// starts them in: MCIAS, Metacrypt, mc-proxy, MCR, MCNS, then MCP. Each
// service joins the platform by adding its Service here once it exists;
// none does yet, so the list is empty and Up runs only the seed CA.
func Platform() []Service {
	return []Service{
		// Services join here in bootstrap order as they land.
	}
}
