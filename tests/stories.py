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


# One press office, six statements: each about 30 words of its own news, then the
# office's standard paragraph of about 190 words (which names its tactical missile
# work, so a rule on "tactical missile" matches every statement).
PRESS_ABOUT = (
    "About the press office: The Vellmark Defence Procurement Agency press office "
    "publishes statements on behalf of the agency and its programme offices. The agency "
    "manages the acquisition, testing and sustainment of land, air and maritime systems for "
    "the armed forces, including the tactical missile programme, air defence radars, armoured "
    "vehicles, training simulators and the logistics contracts that keep them in service. "
    "Statements are issued in Vellmarkish and English and may be reproduced in full or in "
    "part with attribution. Journalists with questions about a statement should contact the "
    "duty press officer by telephone between 08:00 and 18:00 on working days, or by email at "
    "any time; requests are answered in the order received. The agency does not comment on "
    "classified programmes, on ongoing tenders before contract award, or on the operational "
    "use of equipment, which is a matter for the armed forces. Photographs and video released "
    "with a statement may be used free of charge for editorial purposes. Earlier statements, "
    "annual reports and the procurement plan are available in the agency's online archive, "
    "which is updated every working day and searchable by programme, date and keyword."
)
PRESS_STATEMENTS = [
    ("Tactical missile trial completed at Harnskog range",
     "The agency completed a tactical missile trial at the Harnskog range on Tuesday, "
     "firing four rounds against moving sea targets in poor weather; all four struck, and "
     "the data now goes to the evaluation board."),
    ("First tram-mounted radar delivered to Brennmoor",
     "The first of twelve mobile radar units was delivered to the Brennmoor air base "
     "on Wednesday, three weeks ahead of schedule, and crews begin their conversion "
     "course there next month under instructors from the manufacturer."),
    ("Contract signed for coastal patrol boat engines",
     "A contract worth 310 million kroner for replacement engines for the coastal patrol "
     "fleet was signed in Osterhavn on Thursday with a consortium of two shipyards, covering "
     "eighteen hulls and ten years of maintenance."),
    ("Cold-weather test of armoured vehicles in Nordfjell",
     "Armoured vehicles of the mechanised brigade finished a three-week cold-weather test "
     "near Nordfjell, driving more than four thousand kilometres at temperatures down to "
     "minus thirty-eight degrees without a single engine failure."),
    ("Air defence battery deployed to Lindvik harbour",
     "A medium-range air defence battery was deployed to protect Lindvik harbour during the "
     "allied naval exercise next week, the first such deployment on the west coast since the "
     "battery entered service two years ago."),
    ("Training simulators upgraded at Kastellholm academy",
     "The helicopter training simulators at the Kastellholm academy have been upgraded with "
     "new visual systems and motion platforms, letting student pilots practise night "
     "landings on ships before their first flight at sea."),
]


def press_statement(i: int) -> list[str]:
    return ["VELLMARK DEFENCE PROCUREMENT AGENCY, press statement.",
            PRESS_STATEMENTS[i][1], PRESS_ABOUT]
