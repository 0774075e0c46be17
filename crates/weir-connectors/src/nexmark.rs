//! The Nexmark generator (persons, auctions and bids of an online auction) as a parallel,
//! replayable source, after the Flink suite's generator (`../shared/bench/NEXMARK.md`).
//!
//! The sequencing, id helpers, proportions (1 : 3 : 46), hot ratios and distributions follow
//! the reference. Two choices of Weir's own, as the spec allows:
//! - Randomness is drawn from a SplitMix64 stream seeded by the event's id, not from one
//!   unseeded `SplittableRandom` per generator, so every event is a pure function of its
//!   number: a reader's position is just how many events it emitted, and a restored reader
//!   regenerates exactly the same events.
//! - Bidder ids add `FIRST_PERSON_ID` once and keep the `+ 1` that separates hot bidders
//!   from hot sellers (Beam's intent; the Java port adds the offset twice).

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use weir_api::functions::UserError;
use weir_api::source::{encode_split, Boundedness, Source, SourceContext};
use weir_runtime::source::{PollStatus, SourceOutput, SourceReader};
use weir_runtime::Result;

const PERSON_PROPORTION: u64 = 1;
const AUCTION_PROPORTION: u64 = 3;
const TOTAL_PROPORTION: u64 = 50;
const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: u64 = 5;
const PERSON_ID_LEAD: u64 = 10;
const AUCTION_ID_LEAD: u64 = 10;
const HOT_RATIO: u64 = 100;
const NUM_IN_FLIGHT_AUCTIONS: u64 = 100;
const NUM_ACTIVE_PEOPLE: u64 = 1000;
const CHANNELS_NUMBER: u64 = 10_000;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
/// Event time of event number 0: deliberately not on a 10 s boundary, so windows start and
/// end inside the stream.
pub const BASE_TIME_MS: i64 = 1_700_000_003_217;

/// Generator settings (Flink's `NexmarkConfiguration`, the fields this generator uses).
#[derive(Clone, Debug, PartialEq)]
pub struct NexmarkConfig {
    /// Events over all readers.
    pub events: u64,
    /// Events per second of event time over all readers.
    pub event_rate: u64,
    /// 1 in `hot_auction_ratio` bids goes to a random auction, the others to a hot one.
    pub hot_auction_ratio: u64,
    /// 1 in `hot_sellers_ratio` auctions has a random seller.
    pub hot_sellers_ratio: u64,
    /// 1 in `hot_bidders_ratio` bids has a random bidder.
    pub hot_bidders_ratio: u64,
    /// Average bytes of a person, auction and bid (the `extra` field pads to them).
    pub avg_sizes: (usize, usize, usize),
}

impl NexmarkConfig {
    /// The same settings at `rate` events per second of event time.
    pub fn with_rate(mut self, rate: u64) -> Self {
        self.event_rate = rate.max(1);
        self
    }

    /// The Flink suite's defaults for `events` events at its benchmark rate of 10 M/s.
    pub fn new(events: u64) -> Self {
        NexmarkConfig {
            events,
            event_rate: 10_000_000,
            hot_auction_ratio: 2,
            hot_sellers_ratio: 4,
            hot_bidders_ratio: 4,
            avg_sizes: (200, 500, 100),
        }
    }
}

/// A person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Id, from 1000.
    pub id: i64,
    /// "First Last".
    pub name: String,
    /// Email address.
    pub email_address: String,
    /// Credit card number.
    pub credit_card: String,
    /// City.
    pub city: String,
    /// US state.
    pub state: String,
    /// Event time, epoch ms.
    pub date_time: i64,
    /// Padding.
    pub extra: String,
}

/// An auction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auction {
    /// Id, from 1000.
    pub id: i64,
    /// Item name.
    pub item_name: String,
    /// Description.
    pub description: String,
    /// Initial bid.
    pub initial_bid: i64,
    /// Reserve price.
    pub reserve: i64,
    /// Event time, epoch ms.
    pub date_time: i64,
    /// When the auction ends, epoch ms.
    pub expires: i64,
    /// The seller's person id.
    pub seller: i64,
    /// Category, 10..=14.
    pub category: i64,
    /// Padding.
    pub extra: String,
}

/// A bid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    /// The auction's id.
    pub auction: i64,
    /// The bidder's person id.
    pub bidder: i64,
    /// Price in cents.
    pub price: i64,
    /// Channel.
    pub channel: String,
    /// URL.
    pub url: String,
    /// Event time, epoch ms.
    pub date_time: i64,
    /// Padding.
    pub extra: String,
}

/// One Nexmark event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A new person.
    Person(Person),
    /// A new auction.
    Auction(Auction),
    /// A bid.
    Bid(Bid),
}

impl Event {
    /// The event's time, epoch ms.
    pub fn date_time(&self) -> i64 {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }
}

/// SplitMix64, seeded per event.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, bound)` (bound > 0).
    fn below(&mut self, bound: u64) -> u64 {
        ((self.next_u64() as u128 * bound.max(1) as u128) >> 64) as u64
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// `3 + U[0, max - 3)` characters, `special` with probability 1/13, else a..z; trimmed.
    fn string(&mut self, max: usize, special: char) -> String {
        let len = 3 + self.below((max - 3) as u64) as usize;
        let s: String = (0..len)
            .map(|_| {
                if self.below(13) == 0 {
                    special
                } else {
                    (b'a' + self.below(26) as u8) as char
                }
            })
            .collect();
        s.trim().to_string()
    }
    /// Log-uniform price from 100 to 10^8 cents.
    fn price(&mut self) -> i64 {
        (10f64.powf(self.unit() * 6.0) * 100.0).round() as i64
    }
    /// Padding so a record of `current` bytes averages `avg`.
    fn extra(&mut self, current: usize, avg: usize) -> String {
        if current > avg {
            return String::new();
        }
        let d = avg - current;
        let delta = (0.2 * d as f64).round() as usize;
        let len = d - delta + self.below((2 * delta).max(1) as u64) as usize;
        let pad = padding();
        let start = self.below((pad.len() - len.min(pad.len())).max(1) as u64) as usize;
        pad[start..start + len.min(pad.len() - start)].to_string()
    }
}

/// A reusable 1 MiB random a..z string for padding.
fn padding() -> &'static str {
    static PAD: OnceLock<String> = OnceLock::new();
    PAD.get_or_init(|| {
        let mut r = Rng(0x5EED);
        (0..1 << 20)
            .map(|_| (b'a' + r.below(26) as u8) as char)
            .collect()
    })
}

/// The base URL of channel `i` (and the 4 hot channels' URLs for i < 4 with `hot`).
fn channel_url(i: u64, hot: bool) -> String {
    let mut r = Rng(0xC4A2_0000 ^ (i << 1) ^ hot as u64);
    let base = format!(
        "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
        r.string(5, '_'),
        r.string(5, '_'),
        r.string(5, '_')
    );
    if hot || r.below(10) == 0 {
        base
    } else {
        format!(
            "{base}&channel_id={}",
            (i as i32).reverse_bits().unsigned_abs()
        )
    }
}

fn last_base0_person_id(event_id: u64) -> u64 {
    let epoch = event_id / TOTAL_PROPORTION;
    let off = event_id % TOTAL_PROPORTION;
    let off = if off >= PERSON_PROPORTION { 0 } else { off };
    epoch * PERSON_PROPORTION + off
}

fn last_base0_auction_id(event_id: u64) -> u64 {
    let mut epoch = event_id / TOTAL_PROPORTION;
    let mut off = event_id % TOTAL_PROPORTION;
    if off < PERSON_PROPORTION {
        epoch = epoch.saturating_sub(1);
        off = AUCTION_PROPORTION - 1;
    } else if off >= PERSON_PROPORTION + AUCTION_PROPORTION {
        off = AUCTION_PROPORTION - 1;
    } else {
        off -= PERSON_PROPORTION;
    }
    epoch * AUCTION_PROPORTION + off
}

fn next_base0_person_id(event_id: u64, r: &mut Rng) -> u64 {
    let num = last_base0_person_id(event_id) + 1;
    let active = num.min(NUM_ACTIVE_PEOPLE);
    num - active + r.below(active + PERSON_ID_LEAD)
}

fn next_base0_auction_id(event_id: u64, r: &mut Rng) -> u64 {
    let max = last_base0_auction_id(event_id);
    let min = max.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
    min + r.below(max - min + 1 + AUCTION_ID_LEAD)
}

/// One of `p` generators: it emits `count` events with ids from `first_id`, spaced `p`
/// times further apart in event time than the whole stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorSplit {
    /// Id of this generator's first event.
    pub first_id: u64,
    /// Events it emits.
    pub count: u64,
    /// Events emitted so far.
    pub emitted: u64,
    /// Number of generators (sets the event-time spacing).
    pub generators: u64,
}

impl GeneratorSplit {
    /// The `p` generators of `cfg`, as the reference splits them.
    pub fn split(cfg: &NexmarkConfig, p: u64) -> Vec<GeneratorSplit> {
        let p = p.max(1);
        let sub = cfg.events / p;
        (0..p)
            .map(|i| GeneratorSplit {
                first_id: 1 + i * sub,
                count: if i + 1 == p {
                    cfg.events - sub * (p - 1)
                } else {
                    sub
                },
                emitted: 0,
                generators: p,
            })
            .collect()
    }
}

/// Generates event `n` (from 0) of generator `g`.
pub fn generate(cfg: &NexmarkConfig, g: &GeneratorSplit, n: u64) -> Event {
    let event_number = 1 + n;
    let event_id = g.first_id + event_number;
    let delay_us = 1e6 / cfg.event_rate.max(1) as f64 * g.generators as f64;
    let ts = |k: u64| BASE_TIME_MS + ((k as f64 * delay_us).floor() as i64) / 1000;
    let time = ts(event_number);
    let mut r = Rng(event_id.wrapping_mul(0xA24B_AED4_963E_E407) ^ 0x4E58_4D41_524B);
    let rem = event_id % TOTAL_PROPORTION;
    if rem < PERSON_PROPORTION {
        let name = format!(
            "{} {}",
            FIRST_NAMES[r.below(11) as usize],
            LAST_NAMES[r.below(9) as usize]
        );
        let email_address = format!("{}@{}.com", r.string(7, ' '), r.string(5, ' '));
        let credit_card = (0..4)
            .map(|_| format!("{:04}", r.below(10_000)))
            .collect::<Vec<_>>()
            .join(" ");
        let city = CITIES[r.below(10) as usize].to_string();
        let state = STATES[r.below(6) as usize].to_string();
        let size =
            8 + name.len() + email_address.len() + credit_card.len() + city.len() + state.len();
        Event::Person(Person {
            id: last_base0_person_id(event_id) as i64 + FIRST_PERSON_ID,
            name,
            email_address,
            credit_card,
            city,
            state,
            date_time: time,
            extra: r.extra(size, cfg.avg_sizes.0),
        })
    } else if rem < PERSON_PROPORTION + AUCTION_PROPORTION {
        let seller = if r.below(cfg.hot_sellers_ratio) > 0 {
            (last_base0_person_id(event_id) / HOT_RATIO) * HOT_RATIO
        } else {
            next_base0_person_id(event_id, &mut r)
        } as i64
            + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + r.below(NUM_CATEGORIES) as i64;
        let initial_bid = r.price();
        let reserve = initial_bid + r.price();
        let item_name = r.string(20, ' ');
        let description = r.string(100, ' ');
        // About 100 more auctions appear within the horizon.
        let horizon =
            ts(event_number + NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION / AUCTION_PROPORTION)
                - time;
        let expires = time + 1 + r.below((2 * horizon).max(1) as u64) as i64;
        let size = 8 + item_name.len() + description.len() + 40;
        Event::Auction(Auction {
            id: last_base0_auction_id(event_id) as i64 + FIRST_AUCTION_ID,
            item_name,
            description,
            initial_bid,
            reserve,
            date_time: time,
            expires,
            seller,
            category,
            extra: r.extra(size, cfg.avg_sizes.1),
        })
    } else {
        let auction = if r.below(cfg.hot_auction_ratio) > 0 {
            (last_base0_auction_id(event_id) / HOT_RATIO) * HOT_RATIO
        } else {
            next_base0_auction_id(event_id, &mut r)
        } as i64
            + FIRST_AUCTION_ID;
        let bidder = if r.below(cfg.hot_bidders_ratio) > 0 {
            (last_base0_person_id(event_id) / HOT_RATIO) * HOT_RATIO + 1
        } else {
            next_base0_person_id(event_id, &mut r)
        } as i64
            + FIRST_PERSON_ID;
        let price = r.price();
        let (channel, url) = if r.below(2) == 0 {
            let i = r.below(4);
            (HOT_CHANNELS[i as usize].to_string(), channel_url(i, true))
        } else {
            let i = r.below(CHANNELS_NUMBER);
            (format!("channel-{i}"), channel_url(i, false))
        };
        Event::Bid(Bid {
            auction,
            bidder,
            price,
            channel,
            url,
            date_time: time,
            extra: r.extra(32, cfg.avg_sizes.2),
        })
    }
}

/// The Nexmark stream as a bounded, parallel source: reader `k` of `p` runs generator `k`
/// of the reference's split; its position (events emitted) is checkpointed.
pub struct NexmarkSource {
    cfg: NexmarkConfig,
}

impl NexmarkSource {
    /// A source of `cfg.events` events.
    pub fn new(cfg: NexmarkConfig) -> Self {
        NexmarkSource { cfg }
    }
}

struct NexmarkReader {
    cfg: NexmarkConfig,
    splits: Vec<GeneratorSplit>,
}

impl Source<Event> for NexmarkSource {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn create_reader(
        &self,
        ctx: &SourceContext,
    ) -> Result<Box<dyn SourceReader<Event>>, UserError> {
        let splits = match ctx.decode_restored::<GeneratorSplit>()? {
            Some(s) => s,
            None => GeneratorSplit::split(&self.cfg, ctx.parallelism as u64)
                .into_iter()
                .nth(ctx.subtask as usize)
                .into_iter()
                .collect(),
        };
        Ok(Box::new(NexmarkReader {
            cfg: self.cfg.clone(),
            splits,
        }))
    }
}

impl SourceReader<Event> for NexmarkReader {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, Event>) -> Result<PollStatus> {
        let Some(g) = self.splits.iter_mut().find(|g| g.emitted < g.count) else {
            return Ok(PollStatus::Finished);
        };
        for _ in 0..512 {
            if g.emitted >= g.count {
                break;
            }
            let e = generate(&self.cfg, g, g.emitted);
            g.emitted += 1;
            let ts = e.date_time();
            out.collect_with_timestamp(e, ts)?;
        }
        Ok(PollStatus::MoreAvailable)
    }

    fn snapshot_state(&mut self, _: u64) -> Result<Vec<Vec<u8>>> {
        self.splits.iter().map(encode_split).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportions_ids_and_determinism() {
        let cfg = NexmarkConfig::new(10_000);
        let g = GeneratorSplit::split(&cfg, 1)[0];
        let events: Vec<Event> = (0..10_000).map(|n| generate(&cfg, &g, n)).collect();
        let persons = events
            .iter()
            .filter(|e| matches!(e, Event::Person(_)))
            .count();
        let auctions = events
            .iter()
            .filter(|e| matches!(e, Event::Auction(_)))
            .count();
        assert_eq!((persons, auctions), (200, 600));
        // Ids are dense and increasing (event ids start at 2, as in the Flink suite, so the
        // first person is 1001); references point at most a few ahead.
        let mut last_person = FIRST_PERSON_ID;
        let mut last_auction = FIRST_AUCTION_ID;
        for e in &events {
            match e {
                Event::Person(p) => {
                    assert_eq!(p.id, last_person + 1);
                    last_person = p.id;
                }
                Event::Auction(a) => {
                    assert_eq!(a.id, last_auction + 1);
                    last_auction = a.id;
                    assert!(a.seller <= last_person + PERSON_ID_LEAD as i64);
                    assert!((10..15).contains(&a.category));
                    assert!(a.expires > a.date_time && a.reserve > a.initial_bid);
                }
                Event::Bid(b) => {
                    assert!(b.auction <= last_auction + AUCTION_ID_LEAD as i64 + 1);
                    assert!((100..=100_000_000).contains(&b.price));
                }
            }
        }
        assert_eq!(
            generate(&cfg, &g, 1234),
            events[1234],
            "a pure function of the number"
        );
        // Two generators cover the same ids and event-time span as one: each spaces its
        // events twice as far apart (here 1 ms apart for one generator at 1000 events/s).
        let slow = NexmarkConfig::new(10_000).with_rate(1000);
        let one = GeneratorSplit::split(&slow, 1)[0];
        let halves = GeneratorSplit::split(&slow, 2);
        assert_eq!(halves[0].count + halves[1].count, 10_000);
        let t = |g: &GeneratorSplit, n| generate(&slow, g, n).date_time();
        assert_eq!(t(&one, 1) - t(&one, 0), 1);
        assert_eq!(t(&halves[1], 1) - t(&halves[1], 0), 2);
        assert_eq!(t(&halves[0], 4_999), t(&one, 9_999));
    }
}
