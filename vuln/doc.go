// Package vuln answers one question offline: which CVEs affect a CPE.
//
// A DB is built from files the user supplies, read as streams in bounded
// memory (one array item decoded at a time; plain or gzip, told apart by
// the magic bytes):
//
//   - NVD CVE JSON 2.0: the nvdcve-2.0-*.json feed files and saved API 2.0
//     answers, {"format": "NVD_CVE", ..., "vulnerabilities": [{"cve":
//     {...}}, ...]}. Of each record it keeps cve.id; the CVSS base score
//     from cve.metrics (cvssMetricV40, else cvssMetricV31, else
//     cvssMetricV30, else cvssMetricV2; within a version the "Primary"
//     (NVD's) score, else the highest); cve.cisaExploitAdd (the NVD's own
//     known-exploited mark); and from cve.configurations[].nodes[].cpeMatch[]
//     each entry with "vulnerable": true: its criteria (a CPE 2.3
//     formatted string) and versionStartIncluding, versionStartExcluding,
//     versionEndIncluding, versionEndExcluding.
//   - The CISA Known Exploited Vulnerabilities catalog,
//     {"title": ..., "catalogVersion": ..., "vulnerabilities": [{"cveID":
//     ..., "vendorProject": ..., "product": ..., "dateAdded": ...}, ...]}:
//     each cveID is flagged KEV, whichever file comes first.
//
// Both keep their items under "vulnerabilities"; an item with "cve" is an
// NVD record, one with "cveID" a KEV entry, so one file may even mix them.
// A top-level array of items is read as well. The NVD 1.1 feeds
// (CVE_Items) are refused with an error saying so.
//
// # Semantics
//
// A criteria string is part:vendor:product:version:update:...; vendor and
// product compare without regard to case (so do versions). The other CPE
// fields (edition, language, target software...) are ignored, which
// over-approximates. A match entry is one of:
//
//   - a range, when it has any versionStart*/versionEnd* bound (the
//     criteria's version is then ignored): v matches when
//     start <= v (Including) or start < v (Excluding), and
//     v <= end (Including) or v < end (Excluding), for the bounds given;
//   - all versions, when the criteria's version is "*" or "-" (not
//     applicable) and there is no bound;
//   - an exact version otherwise: only that version. The criteria's update
//     field is part of the version ("cpe:...:openssh:8.5:p1" is 8.5p1); an
//     update of "*" also matches any update of that version given apart
//     (a queried "...:8.5:p2:..." matches "...:8.5:*:...").
//
// Versions are ordered by query.VersionKey, the order of the query
// language's version field: numbers compare as numbers, letter runs
// lexically, so 7.4p1 < 7.10 < 8.0 < 8.0p1 and 2.4.9 < 2.4.57; all
// separators are equal, and 8 < 8.0 (a prefix comes first).
//
// Configurations: the entries of a node are ORed, and every vulnerable
// entry of every node counts on its own. An AND of an application with a
// platform it runs on (the platform entry has "vulnerable": false) is
// matched on the application alone, which over-approximates: the
// platform is not checked. Entries of a negated node are dropped.
//
// A queried CPE (cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*, or the
// CPE 2.2 URI form cpe:/a:openbsd:openssh:8.9p1) whose version is "*",
// "-" or empty has no known version: it matches only the entries for all
// versions. Parts (a, o, h) must agree unless either is "*".
//
// When a CVE id comes again (a "modified" feed after the yearly ones),
// the later record replaces the earlier one. A file that is not valid
// JSON stops at the error (items before it stay); an item of the wrong
// shape, or a match entry whose criteria is not a CPE, is skipped,
// counted in Stats and reported with the file and the item's index.
package vuln
