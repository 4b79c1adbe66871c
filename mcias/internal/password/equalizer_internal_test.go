package password

import "testing"

func TestEqualizerUsesParams(t *testing.T) {
	tests := []Params{
		{Memory: 8 * 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32},
		{Memory: 9 * 1024, Iterations: 2, Parallelism: 2, SaltLength: 24, KeyLength: 16},
	}
	for _, p := range tests {
		e, err := NewEqualizer(p)
		if err != nil {
			t.Fatal(err)
		}
		h, err := decode(e.encoded)
		if err != nil {
			t.Fatalf("equalizer hash %q: %v", e.encoded, err)
		}
		if h.params != p {
			t.Fatalf("equalizer hash uses %+v, want %+v", h.params, p)
		}
	}
}
