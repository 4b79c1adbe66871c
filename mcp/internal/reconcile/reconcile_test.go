package reconcile

import (
	"slices"
	"testing"
)

func TestPlan(t *testing.T) {
	desired := []Desired{
		{"new", "rift", "h1", true},
		{"same", "rift", "h2", true},
		{"changed", "rift", "h3", true},
		{"off", "rift", "h4", false},
		{"moved", "orion", "h5", true},
		{"paused", "rift", "h6", true},
		{"never", "rift", "h7", false},
	}
	running := []Running{
		{Service: "same", Node: "rift", Hash: "h2"},
		{Service: "changed", Node: "rift", Hash: "old"},
		{Service: "off", Node: "rift", Hash: "h4"},
		{Service: "moved", Node: "rift", Hash: "h5"},
		{Service: "gone", Node: "rift", Hash: "x"},
		{Service: "paused", Node: "rift", Hash: "h6", Stopped: true},
	}
	var got []string
	for _, a := range Plan(desired, running) {
		got = append(got, a.Action+" "+a.Service+"@"+a.Node)
	}
	want := []string{
		"redeploy changed@rift", "deploy moved@orion", "deploy new@rift", "start paused@rift",
		"undeploy gone@rift", "undeploy moved@rift", "undeploy off@rift",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("plan\n%v\nwant\n%v", got, want)
	}
	if len(Plan(desired[1:2], running[:1])) != 0 {
		t.Fatal("an unchanged service is in the plan")
	}
}
