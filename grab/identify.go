package grab

import "github.com/vantagehq/vantage/fingerprint"

// Identifier returns a Config.Identify that names product, version and
// CPE from db's rules. What a protocol states itself (a MySQL handshake's
// version) wins over a rule; a rule still adds the CPE, OS and device.
func Identifier(db *fingerprint.DB) func(*Result) {
	return func(r *Result) {
		fields := make(map[string]string, 1+len(r.Data)+len(r.Match))
		fields["banner"] = string(r.Banner)
		for k, v := range r.Data {
			fields[k] = v
		}
		for k, v := range r.Match {
			if v != "" {
				fields[k] = v
			}
		}
		m, ok := db.Identify(r.Protocol, fields)
		if !ok {
			return
		}
		switch {
		case r.Product == "":
			r.Product, r.Version, r.CPE = m.Product, m.Version, m.CPE
		case !sameName(r.Product, m.Product):
			return // the rule names something else than the protocol says
		case r.Version == "":
			r.Version, r.CPE = m.Version, m.CPE
		case len(r.CPE) == 0 && m.Version == r.Version:
			r.CPE = m.CPE
		}
		r.Set("vendor", m.Vendor)
		r.Set("os", m.OS)
		r.Set("device", m.Device)
		r.Set("info", m.Info)
		r.Set("rule", m.RuleID)
	}
}

func sameName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}
