#!/usr/bin/env python3
"""Generate the synthetic resume-feedback set: golden.jsonl (50) and train.jsonl (450) beside this file.

Each resume is built from templates with a chosen subset of flaws injected, so its reference issue list is
known exactly. detect_issues() re-derives the issues from the resume text alone, and every example is
checked against it. Standard library only; the same --seed gives byte-identical files.

    python golden_sets/resume-feedback/generate.py [--seed 20261123]
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

CODES = ["missing_metrics", "weak_verbs", "typos", "unexplained_gap", "missing_contact", "buzzwords",
         "too_long", "inconsistent_dates", "no_skills_section", "generic_objective"]
N_GOLDEN, N_TRAIN, MAX_BULLETS, MIN_WORDS, MAX_WORDS = 50, 450, 12, 115, 280
NOW = 2025 * 12 + 8  # Sep 2025 as a month index (year * 12 + month - 1); the newest job runs to "Present"
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
NUM_WORDS = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
             "sixteen seventeen eighteen nineteen twenty").split()

# --- Template data --------------------------------------------------------------------------------
FIRST = ("Maria James Aisha Daniel Priya Marcus Elena Kevin Sofia Omar Hannah Luis Grace Ethan Mei Jamal "
         "Olivia Noah Fatima Lucas Chloe Ravi Isabel Tyler Nadia Samuel Leah Diego Emma Kwame Julia Arjun "
         "Rosa Connor Yuki Andre Megan Tomas Zoe Victor").split()
LAST = ("Lopez Carter Khan Nguyen Patel Brooks Rossi Walsh Kim Haddad Becker Silva Foster Ward Chen Okafor "
        "Murphy Ramirez Ali Schmidt Dubois Iyer Torres Hayes Novak Bennett Sato Mensah Reyes Larsen Cohen "
        "Morales Price Young Garcia Fischer Adams Costa Shah Ellis").split()
PLACES = ("Riverside Lakeview Northgate Summit Cedar Harbor Oakridge Pinecrest Westfield Brightwater Maple "
          "Granite Silverline Bluestone Redwood Meridian Evergreen Crestview Ironwood Beacon").split()
CITIES = ["Austin, TX", "Chicago, IL", "Denver, CO", "Seattle, WA", "Atlanta, GA", "Boston, MA", "Phoenix, AZ",
          "Columbus, OH", "Portland, OR", "Raleigh, NC", "Minneapolis, MN", "Tampa, FL", "San Diego, CA"]
SCHOOLS = ["University of Texas", "Ohio State University", "University of Washington", "Georgia State University",
           "Arizona State University", "University of Minnesota", "Boston University", "Portland State University",
           "University of Florida", "San Diego State University", "DePaul University", "NC State University"]
EMAIL_DOMAINS = ["example.com", "example.org", "example.net"]
BREAK_REASONS = ["family caregiving", "full-time study", "parental leave", "travel", "relocation"]

# Role: (titles junior->senior, employer suffixes, degree, summary focus, skills, bullets).
# A bullet is "verb|object with numbers|object without numbers"; slots: {p} % {n} count {k} thousands
# {h} hours {q} small count {s} headcount.
ROLES = {
    "Software Engineer": ("Junior Software Engineer|Software Engineer|Senior Software Engineer",
        "Labs|Software|Systems|Technologies", "B.S. in Computer Science", "backend services and cloud platforms",
        "Python, Go, PostgreSQL, Docker, Kubernetes, AWS, Git, CI/CD", """
build|a billing service handling {k}K requests a day|a billing service for the payments team
reduce|page load time by {p}%|page load time on the customer dashboard
automate|deployment checks, saving {h} hours a week|deployment checks for the release process
migrate|{n} legacy services to Kubernetes|legacy services to Kubernetes
improve|test coverage of the core modules by {p}%|test coverage of the core modules
resolve|{n} production incidents as on-call lead|production incidents as on-call lead"""),
    "Data Analyst": ("Junior Data Analyst|Data Analyst|Senior Data Analyst", "Analytics|Insights|Group|Partners",
        "B.S. in Statistics", "reporting, SQL and dashboard design",
        "SQL, Python, Tableau, Excel, Power BI, A/B testing, dbt, Data cleaning", """
build|{n} Tableau dashboards used by sales leadership|Tableau dashboards for sales leadership
automate|weekly reports, saving {h} hours a month|weekly reports for the finance team
identify|${k}K in annual savings through vendor analysis|savings through vendor analysis
improve|forecast accuracy by {p}%|forecast accuracy for quarterly planning
clean|a customer database of {k}K records|the customer database before a CRM migration
design|{n} A/B tests that lifted conversion by {p}%|A/B tests for the checkout flow"""),
    "Registered Nurse": ("Staff Nurse|Registered Nurse|Charge Nurse", "Hospital|Medical Center|Health",
        "B.S. in Nursing", "acute care and patient education",
        "Patient assessment, IV therapy, Epic EHR, Wound care, Medication administration, BLS/ACLS, Triage", """
care|for {n} patients per shift on a surgical unit|for patients on a busy surgical unit
reduce|patient falls on the unit by {p}%|patient falls on the unit with hourly rounding
train|{n} new graduate nurses during orientation|new graduate nurses during orientation
cut|medication errors by {p}% with barcode checks|medication errors with barcode checks
improve|patient satisfaction scores by {p}%|patient satisfaction through bedside shift reports
lead|a discharge project that shortened stays by {n} hours|a discharge planning project with case managers"""),
    "Account Executive": ("Sales Development Representative|Account Executive|Senior Account Executive",
        "Solutions|Group|Corp|Supply", "B.B.A. in Marketing", "business software sales and account growth",
        "Salesforce, HubSpot, Cold calling, Negotiation, Pipeline management, Account planning, CRM reporting", """
close|${k}K in new business in one year|new business with mid-market clients
exceed|quota by {p}% for {q} straight quarters|quota in consecutive quarters
grow|territory revenue by {p}%|territory revenue through account planning
build|a pipeline of {n} qualified leads per month|a pipeline of qualified leads
negotiate|renewals with {n} key accounts|renewals with key accounts
onboard|{n} new customer accounts|new customer accounts with the support team"""),
    "Marketing Coordinator": ("Marketing Assistant|Marketing Coordinator|Marketing Manager",
        "Media|Brands|Agency|Group", "B.A. in Marketing", "digital campaigns and content strategy",
        "Google Analytics, HubSpot, SEO, Canva, Email marketing, Social media, Copywriting, Budget tracking", """
launch|{n} email campaigns with a {p}% open rate|email campaigns for product launches
grow|social media followers by {p}% in six months|the brand's social media presence
manage|a ${k}K quarterly ad budget|the quarterly ad budget
increase|organic traffic by {p}% through SEO|organic traffic through SEO content
plan|{n} trade show events|trade show events with the sales team
write|{n} blog posts that generated {k} leads|blog posts for the company website"""),
    "Math Teacher": ("Assistant Teacher|Math Teacher|Math Department Lead", "High School|Academy|Middle School",
        "B.A. in Mathematics Education", "secondary math and curriculum design",
        "Lesson planning, Classroom management, Google Classroom, Differentiated instruction, "
        "Assessment design, Parent communication", """
teach|algebra and geometry to {s} students a year|algebra and geometry to high school students
raise|state test pass rates by {p}%|state test pass rates through small-group tutoring
design|a statistics unit now used by {n} teachers|a new statistics curriculum unit
mentor|{q} first-year teachers|first-year teachers in the department
run|an after-school club that grew to {n} students|an after-school robotics club
cut|failing grades by {p}% with weekly check-ins|failing grades with weekly check-ins"""),
    "Accountant": ("Staff Accountant|Accountant|Senior Accountant", "& Co.|Partners|Financial|Group",
        "B.S. in Accounting", "month-end close and financial reporting",
        "QuickBooks, Excel, SAP, GAAP, Reconciliations, Accounts payable, Audit support, Tax preparation", """
close|the monthly books {q} days faster|the monthly books on schedule
reconcile|{n} bank accounts each month|bank accounts each month
identify|${k}K in duplicate vendor payments|duplicate vendor payments
prepare|{n} quarterly tax filings|quarterly tax filings
reduce|invoice processing time by {p}%|invoice processing time with a new approval process
support|an external audit covering {n} entities|an external audit with the finance team"""),
    "Project Manager": ("Project Coordinator|Project Manager|Senior Project Manager",
        "Construction|Consulting|Group|Builders", "B.S. in Business Administration",
        "cross-functional delivery and risk management",
        "Jira, MS Project, Agile, Scrum, Risk management, Budgeting, Stakeholder communication", """
deliver|{n} projects on time and under budget|projects for enterprise clients
manage|a ${k}K project budget|project budgets and vendor contracts
reduce|delivery delays by {p}%|delivery delays through weekly risk reviews
lead|a team of {n} across three departments|a cross-functional team across departments
introduce|a status dashboard that saved {h} hours a week|a shared status dashboard
coordinate|{q} vendor rollouts in parallel|vendor rollouts with the operations team"""),
    "Customer Support Specialist": ("Support Associate|Customer Support Specialist|Support Team Lead",
        "Software|Services|Retail|Telecom", "B.A. in Psychology", "customer support and help desk operations",
        "Zendesk, Salesforce Service Cloud, Live chat, Troubleshooting, Knowledge base writing, De-escalation", """
resolve|{n} customer tickets a day|customer tickets across chat and email
cut|average response time by {p}%|average response time with saved replies
write|{n} knowledge base articles|knowledge base articles for common issues
train|{n} new support agents|new support agents on escalation procedures
raise|first-contact resolution by {p}%|first-contact resolution through better triage
handle|escalations for {n} enterprise customers|escalations for enterprise customers"""),
    "HR Generalist": ("HR Assistant|HR Generalist|HR Manager", "Group|Industries|Holdings|Services",
        "B.A. in Human Resources", "recruiting, onboarding and employee relations",
        "Workday, ADP, Recruiting, Onboarding, Employee relations, Benefits administration, HR compliance", """
hire|{n} employees across four departments|employees across several departments
cut|time to hire by {p}%|time to hire with structured interviews
launch|an onboarding program for {n} new hires a quarter|a new onboarding program
reduce|first-year turnover by {p}%|first-year turnover in the warehouse teams
run|benefits enrollment for {s} employees|benefits enrollment for all employees
update|the employee handbook covering {n} policies|the employee handbook and policies"""),
}
GENERIC_BULLETS = """
train|{n} new colleagues on internal tools|new colleagues on internal tools
streamline|weekly reporting, saving {h} hours a month|weekly reporting with shared templates
coordinate|a cross-team project delivered {q} weeks early|a cross-team project with other departments
create|{n} templates that cut prep time by {p}%|templates that made prep work easier
present|monthly results to {q} senior leaders|monthly results to senior leaders
mentor|{q} junior team members|junior team members
organize|{n} internal workshops|internal workshops on best practices
improve|process accuracy by {p}%|team processes and documentation
document|{n} standard procedures for the team|standard procedures for the team
develop|{n} training guides for new staff|training guides for new staff
review|{n} team workflows for compliance|team workflows for compliance"""
IRREGULAR = {"build": "built", "cut": "cut", "lead": "led", "run": "ran", "grow": "grew", "write": "wrote",
             "teach": "taught", "plan": "planned", "identify": "identified"}
DOUBLED = {"cut", "run", "plan"}  # cutting, running, planning
WEAK_OPENERS = ["Responsible for {g}", "Helped {b}", "Worked on {g}", "Assisted in {g}"]
TYPOS = {"management": "managment", "developed": "develpoed", "weekly": "weekley", "reports": "reprots",
         "reporting": "reportng", "templates": "tempaltes", "budget": "budjet", "quarterly": "quartely",
         "customer": "custmer", "customers": "custmers", "patients": "patiants", "students": "studnets",
         "accounts": "acounts", "revenue": "revenu", "process": "proccess", "schedule": "schedual",
         "procedures": "proceedures", "accuracy": "accuarcy", "database": "databse", "campaigns": "campains",
         "satisfaction": "satisfacion", "communication": "comunication", "business": "buisness",
         "departments": "deparments", "employees": "employes", "onboarding": "onbaording",
         "colleagues": "collegues", "leadership": "leadeship", "pipeline": "pipline", "analysis": "anaylsis",
         "resolution": "resoluton", "training": "trainning", "received": "recieved", "achieved": "acheived"}
BUZZWORDS = ["synergy", "go-getter", "results-driven", "think outside the box", "rockstar", "team player",
             "self-starter"]
BUZZ_LINES = ["Results-driven team player who likes to think outside the box.",
              "Self-starter and go-getter who brings synergy to every team.",
              "A rockstar team player with a results-driven mindset.",
              "Go-getter who thinks outside the box and creates synergy.",
              "Results-driven self-starter and proven team player.",
              "Team player and self-starter who drives synergy across teams."]
OBJECTIVES = ["Seeking a challenging position in a growing company where I can use my skills and experience.",
              "To obtain a rewarding position that offers opportunities for professional growth.",
              "Seeking a challenging role with a reputable organization where I can contribute and grow.",
              "Looking for an opportunity to utilize my skills and abilities in a professional setting.",
              "Seeking a position where I can apply my knowledge and develop my career."]

# --- Detector: the issues exactly as the task's system prompt defines them --------------------------
SECTIONS = ("OBJECTIVE", "SUMMARY", "EXPERIENCE", "EDUCATION", "SKILLS")
WEAK_RE = re.compile(r"(responsible for|helped|worked on|assisted)\b", re.I)
BUZZ_RE = re.compile(r"\b(%s)\b" % "|".join(re.escape(b).replace("think", "think(?:s|ing)?") for b in BUZZWORDS), re.I)
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.\w+")
PHONE_RE = re.compile(r"\(\d{3}\) \d{3}-\d{4}")
DATE_RES = {"mon": re.compile(r"(%s) (\d{4})" % "|".join(MONTHS)), "num": re.compile(r"(\d{2})/(\d{4})"),
            "year": re.compile(r"(\d{4})")}
MISSPELLED = set(TYPOS.values())


def parse_date(token: str) -> tuple[str, int, int | None] | None:
    """("mon"|"num"|"year", year, month or None) for one date token; None for "Present"."""
    if token == "Present":
        return None
    if m := DATE_RES["mon"].fullmatch(token):
        return "mon", int(m[2]), MONTHS.index(m[1]) + 1
    if m := DATE_RES["num"].fullmatch(token):
        return "num", int(m[2]), int(m[1])
    if m := DATE_RES["year"].fullmatch(token):
        return "year", int(m[1]), None
    raise ValueError(f"unparsable date {token!r}")


def is_gap(end: tuple, start: tuple) -> bool:
    """More than a year without work between an entry ending at `end` and the next starting at `start`."""
    if end[2] and start[2]:
        return (start[1] * 12 + start[2]) - (end[1] * 12 + end[2]) - 1 > 12
    return start[1] - end[1] >= 2  # a year-only date on either side: only whole-year differences are certain


def detect_issues(resume: str) -> list[str]:
    """The issue codes present in a resume, in taxonomy order, read from its text alone."""
    lines = resume.splitlines()
    sections, current = {}, None
    for line in lines:
        if line in SECTIONS:
            current = sections.setdefault(line, [])
        elif current is not None and line.strip():
            current.append(line)
    bullets = [line[2:] for line in lines if line.startswith("- ")]
    entries = [line for line in sections.get("EXPERIENCE", []) if not line.startswith("- ")]
    dated = [[parse_date(t) for t in line.rsplit(" | ", 1)[1].split(" - ")]
             for line in entries + sections.get("EDUCATION", [])]
    spans = dated[:len(entries)]  # newest first: [start, end] per job or explained break
    found = {
        "missing_metrics": not any(re.search(r"[\d%$]", b) for b in bullets),
        "weak_verbs": any(WEAK_RE.match(b) for b in bullets),
        "typos": bool(MISSPELLED & set(re.findall(r"[a-z]+", resume.lower()))),
        "unexplained_gap": any(is_gap(older[1], newer[0]) for newer, older in zip(spans, spans[1:])),
        "missing_contact": not (EMAIL_RE.search(resume) and PHONE_RE.search(resume)),
        "buzzwords": bool(BUZZ_RE.search(resume)),
        "too_long": len(bullets) > MAX_BULLETS,
        "inconsistent_dates": len({d[0] for dates in dated for d in dates if d}) > 1,
        "no_skills_section": "SKILLS" not in sections,
        "generic_objective": "OBJECTIVE" in sections,
    }
    return [code for code in CODES if found[code]]


# --- Generator ------------------------------------------------------------------------------------
def fmt_date(month_index: int | None, fmt: str) -> str:
    if month_index is None:
        return "Present"
    year, month = divmod(month_index, 12)
    return {"mon": f"{MONTHS[month]} {year}", "num": f"{month + 1:02d}/{year}", "year": str(year)}[fmt]


def render_bullet(rng: random.Random, spec: str, metric: bool, weak: bool) -> str:
    """One bullet line from "verb|with numbers|without numbers", with a strong or weak opener."""
    verb, with_numbers, plain = spec.split("|")
    obj = with_numbers.format(p=rng.randint(8, 45), n=rng.randint(3, 30), k=rng.randint(20, 900),
                              h=rng.randint(3, 20), q=rng.randint(2, 8), s=rng.randint(60, 180)) if metric else plain
    if weak:
        stem = verb[:-1] if verb.endswith("e") else verb + verb[-1] if verb in DOUBLED else verb
        return "- " + rng.choice(WEAK_OPENERS).format(b=verb, g=stem + "ing") + " " + obj
    past = IRREGULAR.get(verb) or (verb + "d" if verb.endswith("e") else verb + "ed")
    return f"- {past.capitalize()} {obj}"


def make_resume(rng: random.Random, issues: list[str]) -> tuple[str, dict] | None:
    """A resume with exactly `issues` injected and the facts the feedback cites; None to retry."""
    has = set(issues).__contains__
    role = rng.choice(sorted(ROLES))
    titles, orgs, degree, focus, skills, role_bullets = ROLES[role]
    titles, orgs, skills = titles.split("|"), orgs.split("|"), skills.split(", ")
    first, last = rng.choice(FIRST), rng.choice(LAST)

    # Timeline, newest first: (label, start, end); a >1 year idle stretch is injected or explained.
    n_jobs = rng.randint(2, 4)
    gap_at = rng.randrange(n_jobs - 1) if has("unexplained_gap") else None
    break_at = rng.randrange(n_jobs - 1) if gap_at is None and rng.random() < 0.15 else None
    places, entries, cursor = rng.sample(PLACES, n_jobs), [], NOW
    for i in range(n_jobs):
        start = cursor - rng.randint(12, 44)  # 12+ months, so a job never starts and ends in one year
        title = titles[round((n_jobs - 1 - i) * (len(titles) - 1) / (n_jobs - 1))]
        entries.append((f"{title}, {places[i]} {rng.choice(orgs)}", start, None if i == 0 else cursor))
        idle = rng.randint(25, 40) if i == gap_at else rng.randint(16, 36) if i == break_at else rng.randint(0, 3)
        if i == break_at:
            entries.append((f"Career break ({rng.choice(BREAK_REASONS)})", start - idle, start - 1))
        cursor = start - 1 - idle
    graduation = entries[-1][1] - rng.randint(1, 6)

    # Date formats: one for every dated line, or at least two different ones.
    if has("inconsistent_dates"):
        pair = rng.sample(["mon", "num", "year"], 2)
        fmts = [rng.choice(pair) for _ in range(len(entries) + 1)]
        if len(set(fmts)) == 1:
            fmts[rng.randrange(len(fmts))] = pair[pair[0] == fmts[0]]
    else:
        fmts = [rng.choice(["mon", "num", "year"])] * (len(entries) + 1)

    # Bullets: 6-10 (13-16 when too long), most with numbers unless metrics are missing.
    n_bullets = rng.randint(13, 16) if has("too_long") else rng.randint(6, 10)
    role_pool, generic_pool = role_bullets.split("\n")[1:], GENERIC_BULLETS.split("\n")[1:]
    n_role = max(n_bullets - len(generic_pool), rng.randint(4, len(role_pool)))
    specs = rng.sample(role_pool, n_role) + rng.sample(generic_pool, n_bullets - n_role)
    rng.shuffle(specs)
    metric = [False] * n_bullets if has("missing_metrics") else [rng.random() < 0.75 for _ in specs]
    while not has("missing_metrics") and sum(metric) < 3:
        metric[rng.choice([i for i, m in enumerate(metric) if not m])] = True
    n_weak = min(n_bullets, max(3, round(n_bullets * rng.uniform(0.35, 0.6)))) if has("weak_verbs") else 0
    weak = set(rng.sample(range(n_bullets), n_weak))
    bullets = [render_bullet(rng, s, metric[i], i in weak) for i, s in enumerate(specs)]
    jobs = [i for i, e in enumerate(entries) if not e[0].startswith("Career break")]
    per_job = Counter(jobs + jobs[:1])  # one bullet per job, two for the newest, the rest weighted toward recent
    per_job.update(rng.choices(jobs, weights=range(len(jobs), 0, -1), k=n_bullets - len(jobs) - 1))

    email = f"{first}.{last}@{rng.choice(EMAIL_DOMAINS)}".lower()
    phone = f"({rng.randint(201, 989)}) 555-01{rng.randint(0, 99):02d}"
    contact = [email, phone, rng.choice(CITIES)]
    missing = rng.choice(["email address", "phone number"]) if has("missing_contact") else None
    if missing:
        contact.remove(email if missing == "email address" else phone)
    if rng.random() < 0.3:
        contact.append(f"linkedin.com/in/{first}{last}".lower())
    lines = [f"{first} {last}", " | ".join(contact)]

    buzz = rng.choice(BUZZ_LINES) if has("buzzwords") else None
    years = NUM_WORDS[min(20, max(1, (NOW - entries[-1][1]) // 12)) - 1]
    summary = f"{titles[-1]} with {years} years of experience in {focus}."  # the newest title is the senior one
    if has("generic_objective"):
        lines += ["", "OBJECTIVE", rng.choice(OBJECTIVES) + (f" {buzz}" if buzz else "")]
    elif buzz:
        lines += ["", "SUMMARY", buzz + (f" {summary}" if rng.random() < 0.7 else "")]
    elif rng.random() < 0.6:
        lines += ["", "SUMMARY", summary]

    lines += ["", "EXPERIENCE"]
    for i, ((label, start, end), fmt) in enumerate(zip(entries, fmts)):
        lines.append(f"{label} | {fmt_date(start, fmt)} - {fmt_date(end, fmt)}")
        lines += [bullets.pop() for _ in range(per_job[i])]
    lines += ["", "EDUCATION", f"{degree}, {rng.choice(SCHOOLS)} | {fmt_date(graduation, fmts[-1])}"]
    shown_skills = rng.sample(skills, rng.randint(5, min(7, len(skills))))
    if not has("no_skills_section"):
        lines += ["", "SKILLS", ", ".join(shown_skills)]

    # Typos: 2-4 distinct misspellings in bullets or the skills line (never headers, dates or buzzwords).
    typos = []
    if has("typos"):
        targets = [i for i, line in enumerate(lines) if line.startswith("- ") or line == ", ".join(shown_skills)]
        found = {(i, w.lower()): w for i in targets for w in re.findall(r"[A-Za-z]+", lines[i]) if w.lower() in TYPOS}
        words = sorted({w for _, w in found})
        if len(words) < 2:
            return None
        for word in rng.sample(words, min(len(words), rng.randint(2, 4))):
            i = rng.choice(sorted(i for i, w in found if w == word))
            original = found[i, word]
            wrong = TYPOS[word] if original.islower() else TYPOS[word].capitalize()
            lines[i] = re.sub(rf"\b{original}\b", wrong, lines[i], count=1)
            typos.append((TYPOS[word], word))

    text = "\n".join(lines)
    if not MIN_WORDS <= len(text.split()) <= MAX_WORDS:
        return None
    gap = gap_at is not None and (fmt_date(entries[gap_at + 1][2], fmts[gap_at + 1]),
                                  fmt_date(entries[gap_at][1], fmts[gap_at]))
    facts = {"role": role.lower(), "typo": typos and typos[0][0], "fix": typos and typos[0][1],
             "gap_from": gap and gap[0], "gap_to": gap and gap[1], "missing": missing, "n_bullets": n_bullets,
             "buzz": [m.lower() for m in BUZZ_RE.findall(text)], "skills": rng.sample(shown_skills, 2),
             "weak": list(dict.fromkeys(m[1] for line in lines if (m := WEAK_RE.match(line[2:])))),
             "dates": [fmt_date(e[1], f) for e, f in zip(entries, fmts)] + [fmt_date(graduation, fmts[-1])]}
    return text, facts


# --- Feedback -------------------------------------------------------------------------------------
PRIORITY = ["missing_contact", "typos", "unexplained_gap", "missing_metrics", "weak_verbs", "generic_objective",
            "buzzwords", "inconsistent_dates", "no_skills_section", "too_long"]
LABELS = {"missing_metrics": "unquantified achievements", "weak_verbs": "weak bullet openers",
          "typos": "spelling errors", "unexplained_gap": "an unexplained gap",
          "missing_contact": "incomplete contact details", "buzzwords": "buzzwords", "too_long": "excess length",
          "inconsistent_dates": "mixed date formats", "no_skills_section": "no skills section",
          "generic_objective": "a generic objective"}
ADVICE = {
    "missing_metrics": ["Add numbers to your achievements, such as percentages, dollar amounts or time saved.",
                        "Quantify the bullets with figures like volume, revenue or percent improvement."],
    "weak_verbs": ["Start bullets with strong action verbs instead of {weak}.",
                   "Replace openers like {weak} with verbs such as led, built or reduced."],
    "typos": ["Fix the spelling errors; for example, '{typo}' should be '{fix}'.",
              "Proofread carefully: '{typo}' should read '{fix}', and there are other misspellings."],
    "unexplained_gap": ["Explain the gap between {gap_from} and {gap_to}, even with one line such as a career break.",
                        "Account for the time between {gap_from} and {gap_to} so recruiters do not have to guess."],
    "missing_contact": ["Add your {missing} to the contact line so recruiters can reach you.",
                        "The contact line has no {missing}; add one at the top."],
    "buzzwords": ["Cut empty phrases like '{buzz0}' and '{buzz1}' and let concrete results show those qualities.",
                  "Drop buzzwords such as '{buzz0}' and '{buzz1}'; they add words without evidence."],
    "too_long": ["Trim the {n_bullets} bullets to your strongest eight to ten so the best results stand out.",
                 "At {n_bullets} bullets it is too long; keep only the most relevant achievements."],
    "inconsistent_dates": ["Use one date format throughout instead of mixing styles like '{date0}' and '{date1}'.",
                           "Pick a single date style; '{date0}' and '{date1}' are written differently."],
    "no_skills_section": ["Add a SKILLS section listing tools such as {skill0} and {skill1}.",
                          "Include a SKILLS section so screeners can spot skills like {skill0} quickly."],
    "generic_objective": ["Replace the generic objective with a short summary of your {role} experience.",
                          "Swap the vague objective for a specific summary of what you bring as a {role}."],
}
OPENERS = {1: ["This is a solid {role} resume with one clear weakness.", "Good {role} resume overall, with one fix."],
           2: ["The {role} resume has a good base, but two issues hold it back.", "A decent resume needing two fixes."],
           3: ["Several problems weaken this resume: {labels}.", "This resume needs work on {labels}."]}
PRAISE = ["This is a strong {role} resume: achievements are quantified, dates are consistent and it is easy to scan.",
          "A clean, well-organised {role} resume with measurable results, full contact details and a skills section."]
CLOSERS = ["Keep tailoring the bullets to each job posting.", "No major changes are needed beyond tailoring it."]


def feedback(rng: random.Random, issues: list[str], facts: dict) -> str:
    """2-3 sentences: praise for a clean resume, else an opener plus advice on the top two issues."""
    if not issues:
        return f"{rng.choice(PRAISE)} {rng.choice(CLOSERS)}".format(role=facts["role"])
    ranked = sorted(issues, key=PRIORITY.index)
    labels = [LABELS[c] for c in ranked]
    buzz, dates = facts["buzz"] + ["", ""], facts["dates"]
    other_date = next((d for d in dates if parse_date(d)[0] != parse_date(dates[0])[0]), dates[-1])
    values = {**facts, "labels": ", ".join(labels[:-1]) + " and " + labels[-1], "buzz0": buzz[0],
              "buzz1": buzz[1], "skill0": facts["skills"][0], "skill1": facts["skills"][1], "date0": dates[0],
              "date1": other_date, "weak": " or ".join(f"'{w}'" for w in facts["weak"][:2])}
    sentences = [rng.choice(OPENERS[min(len(issues), 3)])] + [rng.choice(ADVICE[c]) for c in ranked[:2]]
    return " ".join(s.format(**values) for s in sentences)


def score_for(n_issues: int) -> int:
    return max(1, 5 - n_issues)


def build_split(rng: random.Random, n: int, prefix: str, width: int, exclude: set[str]) -> list[dict]:
    """n examples, n/5 per score (1-5), none whose normalised resume is in `exclude` or repeated."""
    plan = [k for k in (0, 1, 2, 3) for _ in range(n // 5)] + [rng.choice([4, 5]) for _ in range(n // 5)]
    rng.shuffle(plan)
    rows, seen = [], set(exclude)
    for number, k in enumerate(plan, start=1):
        while True:
            issues = sorted(rng.sample(CODES, k), key=CODES.index)
            made = make_resume(rng, issues)
            if made and normalise(made[0]) not in seen:
                break
        text, facts = made
        assert detect_issues(text) == issues, (issues, detect_issues(text), text)
        seen.add(normalise(text))
        reference = {"score": score_for(len(issues)), "issues": issues, "feedback": feedback(rng, issues, facts)}
        rows.append({"id": f"{prefix}{number:0{width}d}", "resume": text, "reference": reference})
    return rows


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261123)
    seed = parser.parse_args().seed
    out = Path(__file__).resolve().parent
    golden = build_split(random.Random(f"{seed}:golden"), N_GOLDEN, "rf-g-", 3, set())
    golden_texts = {normalise(r["resume"]) for r in golden}
    train = build_split(random.Random(f"{seed}:train"), N_TRAIN, "rf-t-", 4, golden_texts)
    assert not golden_texts & {normalise(r["resume"]) for r in train}, "a golden resume leaked into train"
    write_jsonl(out / "golden.jsonl", golden)
    write_jsonl(out / "train.jsonl", train)
    for name, rows in (("golden", golden), ("train", train)):
        scores = Counter(r["reference"]["score"] for r in rows)
        issues = Counter(c for r in rows for c in r["reference"]["issues"])
        words = sorted(len(r["resume"].split()) for r in rows)
        print(f"{name}: {len(rows)} examples; scores " + ", ".join(f"{s}: {scores[s]}" for s in range(1, 6))
              + f"; words {words[0]}-{words[-1]} (median {words[len(words) // 2]})")
        print("  issues: " + ", ".join(f"{c} {issues[c]}" for c in CODES))


if __name__ == "__main__":
    main()
