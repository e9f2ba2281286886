"""A wire story in variants, and a second story about the same event (issue 8 corpus)."""

from __future__ import annotations

WIRE_TITLE = "Kim Jong Un inspects new tactical missile system, state media says"
WIRE = [
    "SEOUL, May 15 (Wire) -- North Korean leader Kim Jong Un inspected a new tactical "
    "missile system and called for an epochal change in war preparations, state media "
    "reported Wednesday, as the regime ramps up production of weapons that may be intended "
    "for sale to Russia.",
    "Kim acquainted himself with the tactical missile weapon system to be newly equipped by "
    "the combined missile units of the Korean People's Army in charge of an important firing "
    "assignment on Tuesday, the Korean Central News Agency reported.",
    "The North's weapons factories have fulfilled their munitions plans for the first half "
    "of the year and will carry out the plans for the production of the tactical missile "
    "weapon system by the end of the year, the agency said.",
    "The inspection came two days after state media reported that Kim visited munitions "
    "factories producing sniper rifles and vehicles for transporting multiple rocket "
    "launcher systems.",
    "Speculation has mounted that North Korea is conducting tests and ramping up weapons "
    "production in anticipation of sales to Russia and other buyers. Seoul's Joint Chiefs "
    "of Staff called an artillery firing drill last month a potential demonstration of "
    "performance for export.",
    "Washington and its allies have long accused North Korea of sending weapons to Russia "
    "for its invasion of Ukraine in exchange for fuel, raw materials and technology "
    "assistance. Pyongyang and Moscow deny the charges.",
    "Over the weekend, South Korea's spy agency told local media it was investigating "
    "claims that North Korean artillery shells manufactured in the 1970s were turning up "
    "on the battlefield in Ukraine.",
]

OTHER_TITLE = "Seoul raises alert after North shows off new missile launcher"
OTHER = [
    "SEOUL, May 15 (Herald) -- South Korea's military raised its surveillance posture along "
    "the border on Wednesday after Pyongyang publicised a visit by its leader to a unit "
    "fielding a new tactical missile launcher, defence officials said.",
    "Officials at the Ministry of National Defense told reporters the deployment did not "
    "change the balance of forces on the peninsula but warned that the North was testing "
    "new command arrangements for its frontline artillery brigades.",
    "Opposition lawmakers called for an emergency session of parliament's defence committee, "
    "arguing the government had been slow to respond to a string of launches since January.",
    "Analysts at a Seoul think tank said the timing of the announcement suggested Pyongyang "
    "wanted to signal its value as a supplier to Moscow ahead of a planned summit.",
    "The ministry said it was coordinating closely with Washington and Tokyo and that joint "
    "exercises scheduled for next month would go ahead as planned.",
]

NAV = ("<nav><a href='/'>Home</a> <a href='/world'>World</a> <a href='/sport'>Sport</a> "
       "<a href='/business'>Business</a></nav>")


def page(title: str, paragraphs: list[str], site: str, canonical: str | None = None,
         extra_boilerplate: str = "") -> bytes:
    canon = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title} | "
            f"{site}</title>{canon}</head><body><header>{NAV}</header><main><article>"
            f"<h1>{title}</h1><p class='byline'>By staff, {site}</p>{body}</article></main>"
            f"<aside><h3>Most read</h3><ul><li><a href='/a'>Markets rally on rate hopes</a>"
            f"</li><li><a href='/b'>Storm warning for the coast</a></li></ul></aside>"
            f"{extra_boilerplate}<footer>© {site} 2024. All rights reserved. "
            f"<a href='/privacy'>Privacy</a> <a href='/terms'>Terms</a></footer>"
            f"</body></html>").encode()
