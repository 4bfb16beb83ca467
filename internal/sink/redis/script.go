package redis

import (
	"crypto/sha1"
	"encoding/hex"
)

// guardScript adds a run of events, each only if its guard key is new, and
// stops at the first event that fails. A script runs atomically, so a guard
// is never set without its entry (the guard is deleted again when XADD
// fails) and no event of the run is stored after one that failed. A guard
// holds the commit LSN of the event that set it.
//
//	KEYS: stream 1, guard 1, stream 2, guard 2, ...
//	ARGV[1]: guard TTL in milliseconds
//	ARGV[2]: MAXLEN ~ threshold, "0" for none
//	ARGV[3]: "1" for NOMKSTREAM
//	ARGV[4...]: per event its commit LSN (the guard's value), the number of
//	fields n, then n field/value pairs
//
// The reply has one element per event handled: the new entry id, or for a
// duplicate (the guard already existed) an array holding the guard's value,
// and the error of reading it as a second element when GET failed (an ACL
// without +get). After a failure it ends with -1 and the error message of the
// failed event. Errors are returned as values, not as nested error replies,
// so that the reply always parses the same way.
const guardScript = `
local ttl = ARGV[1]
local maxlen = ARGV[2]
local trim = maxlen ~= '0'
local nomk = ARGV[3] == '1'
local out = {}
local a = 4
for i = 1, #KEYS, 2 do
  local lsn = ARGV[a]
  local first = a + 2
  local last = a + 1 + 2 * tonumber(ARGV[a + 1])
  a = last + 1
  local fresh = redis.pcall('SET', KEYS[i + 1], lsn, 'NX', 'PX', ttl)
  if type(fresh) == 'table' and fresh.err then
    out[#out + 1] = -1
    out[#out + 1] = fresh.err
    return out
  end
  if fresh then
    local id
    if nomk and trim then
      id = redis.pcall('XADD', KEYS[i], 'NOMKSTREAM', 'MAXLEN', '~', maxlen, '*', unpack(ARGV, first, last))
    elseif nomk then
      id = redis.pcall('XADD', KEYS[i], 'NOMKSTREAM', '*', unpack(ARGV, first, last))
    elseif trim then
      id = redis.pcall('XADD', KEYS[i], 'MAXLEN', '~', maxlen, '*', unpack(ARGV, first, last))
    else
      id = redis.pcall('XADD', KEYS[i], '*', unpack(ARGV, first, last))
    end
    if type(id) ~= 'string' then
      redis.call('DEL', KEYS[i + 1])
      out[#out + 1] = -1
      if type(id) == 'table' and id.err then
        out[#out + 1] = id.err
      else
        out[#out + 1] = 'NOSTREAM the stream does not exist and nomkstream is set'
      end
      return out
    end
    out[#out + 1] = id
  else
    local held = redis.pcall('GET', KEYS[i + 1])
    if type(held) == 'table' and held.err then
      out[#out + 1] = {'', held.err}
    elseif type(held) == 'string' then
      out[#out + 1] = {held}
    else
      out[#out + 1] = {''}
    end
  end
end
return out
`

var guardScriptSHA = func() string {
	h := sha1.Sum([]byte(guardScript))
	return hex.EncodeToString(h[:])
}()
