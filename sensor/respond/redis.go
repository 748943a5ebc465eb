package respond

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/vantagehq/vantage/record"
)

// Redis (RESP2, and inline commands): answers PING, INFO, AUTH (always
// refused; the attempted user and password are recorded), the commands of
// the well-known CONFIG SET / SLAVEOF / MODULE LOAD chain with plausible
// replies (nothing is stored or run), and anything else with an error.
// The raw commands are in Payload; their names are the fact
// "redis.commands".
func init() {
	Register(&Responder{Name: "redis", Detect: detectRedis, Serve: serveRedis})
}

var redisInline = []string{"PING", "INFO", "AUTH ", "CONFIG ", "SLAVEOF ", "REPLICAOF ", "MODULE ",
	"FLUSHALL", "FLUSHDB", "KEYS ", "EVAL ", "DBSIZE", "CLIENT ", "COMMAND", "HELLO", "QUIT", "SET ", "ECHO "}

func detectRedis(b []byte) bool {
	if len(b) >= 2 && b[0] == '*' && b[1] >= '0' && b[1] <= '9' {
		return true
	}
	for _, p := range redisInline {
		if hasPrefixFold(b, p) {
			return true
		}
	}
	return false
}

const redisMaxArgs = 64

// readRESP reads one command (a RESP array of bulk strings, or an inline
// line) and returns its arguments.
func readRESP(c *Conn) ([][]byte, error) {
	first, err := c.Peek(1)
	if err != nil {
		return nil, err
	}
	if first[0] != '*' {
		line, err := c.ReadLine(0)
		if err != nil {
			return nil, err
		}
		f := bytes.Fields(line)
		if len(f) > redisMaxArgs {
			f = f[:redisMaxArgs]
		}
		return f, nil
	}
	line, err := c.ReadLine(32)
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n > redisMaxArgs {
		return nil, ErrLimit
	}
	var args [][]byte
	for i := 0; i < n; i++ {
		l, err := c.ReadLine(32)
		if err != nil {
			return args, err
		}
		if len(l) < 2 || l[0] != '$' {
			return args, errBadRequest
		}
		sz, err := strconv.Atoi(string(l[1:]))
		if err != nil || sz < 0 || sz > c.Lim.MaxMessage {
			return args, ErrLimit
		}
		v, err := c.ReadFull(sz + 2)
		if err != nil {
			return args, err
		}
		args = append(args, v[:sz])
	}
	return args, nil
}

const redisInfo = "# Server\r\nredis_version:6.2.14\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_mode:standalone\r\nos:Linux 5.15.0-105-generic x86_64\r\narch_bits:64\r\nmultiplexing_api:epoll\r\ngcc_version:11.4.0\r\nprocess_id:1187\r\ntcp_port:6379\r\nuptime_in_seconds:2614723\r\nuptime_in_days:30\r\n\r\n# Clients\r\nconnected_clients:1\r\n\r\n# Memory\r\nused_memory:873288\r\nused_memory_human:852.82K\r\nmaxmemory:0\r\n\r\n# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:0\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n# Keyspace\r\n"

func bulk(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }

// redisReply answers one command; quit ends the conversation.
func redisReply(args [][]byte) (reply string, quit bool) {
	if len(args) == 0 {
		return "", false
	}
	cmd := strings.ToUpper(string(args[0]))
	sub := ""
	if len(args) > 1 {
		sub = strings.ToUpper(string(args[1]))
	}
	switch cmd {
	case "PING":
		if len(args) > 1 {
			return bulk(string(args[1])), false
		}
		return "+PONG\r\n", false
	case "ECHO":
		if len(args) > 1 {
			return bulk(string(args[1])), false
		}
	case "INFO":
		return bulk(redisInfo), false
	case "AUTH":
		return "-WRONGPASS invalid username-password pair or user is disabled.\r\n", false
	case "QUIT":
		return "+OK\r\n", true
	case "CONFIG":
		if sub == "GET" && len(args) > 2 {
			return "*2\r\n" + bulk(string(args[2])) + bulk(""), false
		}
		return "+OK\r\n", false
	case "SET", "SLAVEOF", "REPLICAOF", "FLUSHALL", "FLUSHDB", "SELECT", "CLIENT", "SAVE", "MODULE":
		return "+OK\r\n", false
	case "BGSAVE":
		return "+Background saving started\r\n", false
	case "GET":
		return "$-1\r\n", false
	case "KEYS", "COMMAND", "SCAN":
		return "*0\r\n", false
	case "DBSIZE", "DEL", "EXISTS":
		return ":0\r\n", false
	}
	return fmt.Sprintf("-ERR unknown command '%s', with args beginning with: \r\n", clean(strings.Map(func(r rune) rune {
		if r < ' ' || r == 127 {
			return -1
		}
		return r
	}, string(args[0])), 64)), false
}

func serveRedis(ctx context.Context, c *Conn, ev *record.Event) error {
	var names []string
	defer func() {
		if len(names) > 0 {
			c.Fact("redis.commands", strings.Join(names, ","))
		}
	}()
	for round := 0; round < c.Lim.MaxRounds*4; round++ {
		args, err := readRESP(c)
		if err != nil {
			if round > 0 && isTimeout(err) {
				return nil
			}
			if err == ErrLimit || err == errBadRequest {
				c.Write([]byte("-ERR Protocol error\r\n"))
			}
			return err
		}
		if len(args) == 0 {
			continue
		}
		name := strings.ToUpper(clean(string(args[0]), 32))
		if len(args) > 1 && (name == "CONFIG" || name == "MODULE" || name == "CLIENT") {
			name += " " + strings.ToUpper(clean(string(args[1]), 32))
		}
		if len(names) < 32 {
			names = append(names, name)
		}
		if strings.EqualFold(string(args[0]), "AUTH") && ev.Password == "" {
			switch len(args) {
			case 2:
				ev.Password = clean(string(args[1]), 128)
			case 3:
				ev.Username = clean(string(args[1]), 128)
				ev.Password = clean(string(args[2]), 128)
			}
		}
		reply, quit := redisReply(args)
		if err := c.Write([]byte(reply)); err != nil {
			return err
		}
		if quit {
			return nil
		}
	}
	return nil
}
