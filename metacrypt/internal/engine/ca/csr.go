package ca

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"slices"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/names"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// MaxNames bounds the names of one certificate.
const MaxNames = 100

// leafNames validates the names a certificate asks for: each DNS name
// (normalized), each IP address, and the common name, which must itself
// be one of them or a DNS name or IP address (it is then added, so the
// policy sees it). It returns the names and the subject's common name
// (empty when the derived one would not fit the 64-character limit).
func leafNames(cn string, dnsIn, ipIn []string) (pki.Names, string, error) {
	var n pki.Names
	for i, d := range dnsIn {
		name, err := names.ParseDNS(d)
		if err != nil {
			return n, "", apierr.InvalidField(fmt.Sprintf("dns_names[%d]", i), "%v", err)
		}
		if !slices.Contains(n.DNS, name) {
			n.DNS = append(n.DNS, name)
		}
	}
	ips, err := pki.ParseIPs("ip_addresses", ipIn)
	if err != nil {
		return n, "", err
	}
	for _, a := range ips {
		if !slices.Contains(n.IPs, a) {
			n.IPs = append(n.IPs, a)
		}
	}
	switch {
	case cn == "":
	case len(cn) > 64:
		return n, "", apierr.InvalidField("common_name", "longer than 64 characters")
	default:
		if a, err := netip.ParseAddr(cn); err == nil {
			a = a.Unmap()
			if !slices.Contains(n.IPs, a) {
				n.IPs = append(n.IPs, a)
			}
			cn = a.String()
			break
		}
		name, err := names.ParseDNS(cn)
		if err != nil {
			return n, "", apierr.InvalidField("common_name", "must be a DNS name or an IP address: %v", err)
		}
		if !slices.Contains(n.DNS, name) {
			n.DNS = append([]string{name}, n.DNS...)
		}
		cn = name
	}
	if len(n.DNS)+len(n.IPs) == 0 {
		return n, "", apierr.InvalidField("dns_names", "at least one DNS name or IP address is required")
	}
	if len(n.DNS)+len(n.IPs) > MaxNames {
		return n, "", apierr.InvalidField("dns_names", "more than %d names", MaxNames)
	}
	if cn == "" {
		if len(n.DNS) > 0 {
			cn = n.DNS[0]
		} else {
			cn = n.IPs[0].String()
		}
		if len(cn) > 64 {
			cn = ""
		}
	}
	return n, cn, nil
}

// ParseCSR decodes and checks a PEM certificate request: its signature
// must verify with its own key.
func ParseCSR(field, pemText string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, apierr.InvalidField(field, "no PEM CERTIFICATE REQUEST block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, apierr.InvalidField(field, "%v", err)
	}
	return csr, nil
}

// csrNames are the names a CSR asks for (its DNS and IP SANs and common
// name), after checking its signature. E-mail and URI SANs are refused:
// nothing in the policy can vouch for them.
func csrNames(csr *x509.CertificateRequest) (pki.Names, string, error) {
	if err := csr.CheckSignature(); err != nil {
		return pki.Names{}, "", apierr.InvalidField("csr_pem", "signature does not verify: %v", err)
	}
	if len(csr.EmailAddresses) > 0 {
		return pki.Names{}, "", apierr.InvalidField("csr_pem", "e-mail address SANs are not issued (%s)", csr.EmailAddresses[0])
	}
	if len(csr.URIs) > 0 {
		return pki.Names{}, "", apierr.InvalidField("csr_pem", "URI SANs are not issued (%s)", csr.URIs[0])
	}
	ips := make([]string, len(csr.IPAddresses))
	for i, ip := range csr.IPAddresses {
		ips[i] = ip.String()
	}
	n, cn, err := leafNames(csr.Subject.CommonName, csr.DNSNames, ips)
	if err != nil {
		return n, "", apierr.InvalidField("csr_pem", "%s", apierr.Describe(err).Message)
	}
	return n, cn, nil
}
