-- One customer's tier limits, checked and charged in one atomic step.
--
-- Chapter 8, "Rate limiting tied to billing tiers". Run by
-- limits_redis.py with EVALSHA; the same arithmetic as LocalLimiter and
-- TokenBucket in limits.py.
--
-- KEYS[1]  hash: the audio bucket, fields `tokens` and `updated_at`
-- KEYS[2]  sorted set: open stream ids, scored by when their lease ends
-- ARGV     op, stream id, capacity (audio seconds per minute), then
--   op 'reserve': need, want, now, max streams, lease seconds
--   op 'release': unused audio seconds, given back to the bucket
-- Replies {'ok', seconds granted}, {'streams', ''},
-- {'audio', seconds until `need` fits, or 'inf'}, or {'released', ''}.

local bucket, streams = KEYS[1], KEYS[2]
local op, stream, capacity = ARGV[1], ARGV[2], tonumber(ARGV[3])
-- Any bucket left alone for a minute is full, the same as no key.
local BUCKET_TTL_S = 61

local function exact(number)
  return string.format('%.17g', number)
end

if op == 'release' then
  redis.call('ZREM', streams, stream)
  local tokens = tonumber(redis.call('HGET', bucket, 'tokens'))
  if tokens then
    local unused = tonumber(ARGV[4])
    redis.call('HSET', bucket, 'tokens',
               exact(math.min(capacity, tokens + unused)))
  end
  return {'released', ''}
end

local need, want, now =
  tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local max_streams, lease_s = tonumber(ARGV[7]), tonumber(ARGV[8])

-- Leases that ran out were held by replicas that died mid-stream.
redis.call('ZREMRANGEBYSCORE', streams, '-inf', exact(now))
if not redis.call('ZSCORE', streams, stream)
    and redis.call('ZCARD', streams) >= max_streams then
  return {'streams', ''}
end

local state = redis.call('HMGET', bucket, 'tokens', 'updated_at')
local tokens = tonumber(state[1]) or capacity
local updated_at = tonumber(state[2]) or now
local elapsed = math.max(0, now - updated_at)
tokens = math.min(capacity, tokens + elapsed * capacity / 60)
local amount = math.max(need, math.min(want, tokens))
if amount > tokens then
  if amount > capacity then
    return {'audio', 'inf'}
  end
  return {'audio', exact((amount - tokens) * 60 / capacity)}
end

redis.call('HSET', bucket, 'tokens', exact(tokens - amount),
           'updated_at', exact(math.max(now, updated_at)))
redis.call('EXPIRE', bucket, BUCKET_TTL_S)
redis.call('ZADD', streams, exact(now + lease_s), stream)
redis.call('EXPIRE', streams, math.ceil(lease_s) + 1)
return {'ok', exact(amount)}
