#!/usr/bin/env bash
# Regenerates the demo catalog's media. The outputs are committed; run this only to change them:
#   episodes/<slug>/audio.mp3        spoken summaries of the three "Defusing Difficult Encounters" episodes
#                                    (two podcasts and the members-only roll-call briefing), one espeak-ng
#                                    clip a sentence joined with 0.4 s of silence between sentences
#   episodes/<slug>/transcript.vtt   WebVTT, one cue a sentence, timed from the clips' sample counts
#   episodes/<slug>/chapters.json    Podcast Namespace JSON chapters, each starting at a sentence's start
#   episodes/defining-de-escalation/cover.jpg                      1400x1400 episode artwork
#   feeds/*.jpg                                                    1400x1400 feed artwork
#   feeds/programme-logo.png                                       240x80 "VALOR" badge for the site header
#   feeds/defusing-difficult-encounters/<poster>.pdf and .png      three US Letter posters (scripts/make-poster.py)
#                                                                  and thumbnails rendered from them
# Needs: espeak-ng, ffmpeg (with ffprobe), imagemagick, ghostscript and python3 (standard library only):
#   apt-get install espeak-ng ffmpeg imagemagick ghostscript python3
# Every file is written to a temporary folder first and then moved into place, so a run that fails leaves
# the old files, and a file hard-linked elsewhere (a benchmark catalog, say) is replaced, not rewritten.
# The same tools give the same bytes on every run: no dates, encoder versions or random IDs are written.
set -euo pipefail
cd "$(dirname "$0")/.."

CONVERT=/usr/bin/convert # ImageMagick itself, not a wrapper earlier on PATH
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

place() { # finished file, destination
  mv -f "$1" "$2"
  printf '  wrote %-78s %7d bytes\n' "$2" "$(stat -c %s "$2")"
}

# speak SLUG <<'EOF' ... EOF
# The episode's spoken text on stdin, one sentence a line; a line "# Title" starts a chapter at the
# next sentence (the first line must be one). Each sentence is its own espeak-ng clip, so each cue's
# start and end are the clip's exact sample positions in the joined WAV, not estimates.
speak() {
  local slug=$1 dir="$tmp/$1" n=0 line list
  mkdir -p "$dir"
  : >"$dir/script.txt"
  while IFS= read -r line; do
    [[ -z $line ]] && continue
    printf '%s\n' "$line" >>"$dir/script.txt"
    if [[ $line != '# '* ]]; then
      n=$((n + 1))
      espeak-ng -v en-us -s 165 -w "$dir/$n.wav" "$line"
    fi
  done
  # espeak-ng writes 22050 Hz mono 16-bit PCM; the gap is made to match (the cue step checks it does).
  ffmpeg -v error -y -f lavfi -i anullsrc=r=22050:cl=mono -t 0.4 -c:a pcm_s16le \
    -map_metadata -1 -fflags +bitexact -flags:a +bitexact "$dir/gap.wav"
  list="$dir/list.txt"
  : >"$list"
  for ((i = 1; i <= n; i++)); do
    ((i > 1)) && echo "file 'gap.wav'" >>"$list"
    echo "file '$i.wav'" >>"$list"
  done
  ffmpeg -v error -y -f concat -safe 0 -i "$list" -c:a pcm_s16le \
    -map_metadata -1 -fflags +bitexact -flags:a +bitexact "$dir/joined.wav"

  # Cue and chapter times from the WAV headers' sample counts; checks the joined file is their sum.
  python3 - "$dir" "$n" <<'PY'
import json, sys, wave
from pathlib import Path

folder, count = Path(sys.argv[1]), int(sys.argv[2])

def frames(path, params=None):
    with wave.open(str(path)) as w:
        p = (w.getnchannels(), w.getsampwidth(), w.getframerate())
        if params and p != params:
            sys.exit(f"{path.name}: {p} is not the format of the first clip {params}")
        return w.getnframes(), p

lines = (folder / "script.txt").read_text().splitlines()
first, params = frames(folder / "1.wav")
rate = params[2]
gap, _ = frames(folder / "gap.wav", params)
ms = lambda samples: round(samples * 1000 / rate)
clock = lambda t: f"{t // 3600000:02d}:{t // 60000 % 60:02d}:{t // 1000 % 60:02d}.{t % 1000:03d}"
esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

vtt, chapters, pos, n, pending = ["WEBVTT", ""], [], 0, 0, None
for line in lines:
    if line.startswith("# "):
        pending = line[2:].strip()
        continue
    n += 1
    if n == 1 and pending is None:
        sys.exit("the text must begin with a '# Title' line: the first chapter starts at 0")
    if n > 1:
        pos += gap
    clip, _ = frames(folder / f"{n}.wav", params)
    start, end = ms(pos), ms(pos + clip)
    vtt += [f"{clock(start)} --> {clock(end)}", f"<v Narrator>{esc(line)}", ""]
    if pending is not None:
        chapters.append({"startTime": start / 1000 if start else 0, "title": pending})
        pending = None
    pos += clip
assert n == count, (n, count)
joined, _ = frames(folder / "joined.wav", params)
if joined != pos:
    sys.exit(f"joined.wav has {joined} samples, the clips and gaps {pos}")

(folder / "transcript.vtt").write_text("\n".join(vtt))
doc = {"version": "1.2.0", "chapters": chapters}
(folder / "chapters.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
(folder / "summary").write_text(f"{pos} {rate} {n} {len(chapters)}\n")
PY
  local samples rate cues chapters
  read -r samples rate cues chapters <"$dir/summary"

  # 64 kb/s mono CBR keeps each file well under 1 MB; -map_metadata -1 and -fflags +bitexact keep the
  # bytes reproducible, so regenerating does not change the content version in the URLs.
  ffmpeg -v error -y -i "$dir/joined.wav" -ac 1 -ar 22050 -c:a libmp3lame -b:a 64k \
    -map_metadata -1 -fflags +bitexact -flags:a +bitexact "$dir/audio.mp3"

  # LAME puts an encoder delay (1105 samples here) before the audio and pads the last frame; ffmpeg
  # records both in the Xing/LAME header and a decoder that reads it (ffmpeg's does) trims them, so the
  # MP3 must decode to exactly the WAV's samples, or the cue times would not match what is heard.
  # ffprobe's container duration counts whole frames, delay and padding included (about 60 ms more),
  # and gives the delay as its start_time; duration minus start_time is checked too.
  local decoded probed
  decoded=$(ffmpeg -v error -i "$dir/audio.mp3" -f s16le -ac 1 -ar "$rate" - | wc -c)
  probed=$(ffprobe -v error -show_entries format=start_time,duration -of csv=p=0 "$dir/audio.mp3")
  python3 - "$samples" "$((decoded / 2))" "$rate" "$probed" <<'PY'
import sys
wav, mp3, rate = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
start, duration = map(float, sys.argv[4].split(","))
print(f"  wav: {wav} samples = {wav / rate:.3f} s; mp3 decodes to {mp3} samples ({mp3 - wav:+d}); "
      f"ffprobe: duration {duration:.3f} s, start_time {start:.6f} s = {round(start * rate)} samples of "
      f"delay, padding {round((duration - start) * rate) - wav} samples")
if mp3 != wav:
    sys.exit("the MP3 does not decode to the WAV's length: check the encoder's Xing/LAME header")
if abs(duration - start - wav / rate) > 0.05:
    sys.exit("ffprobe's duration less the encoder delay differs from the WAV's by more than 50 ms")
PY
  echo "  $slug: $cues cues, $chapters chapters"
  place "$dir/audio.mp3" "episodes/$slug/audio.mp3"
  place "$dir/transcript.vtt" "episodes/$slug/transcript.vtt"
  place "$dir/chapters.json" "episodes/$slug/chapters.json"
}

speak behavioral-response-to-stress-and-fear <<'EOF'
# Introduction
Behavioral Response to Stress and Fear.
A Spotlight on Safety podcast from the VALOR Initiative, June 30, 2016.
# How stress affects performance
This episode examines how the mind and body respond to stress and explores methods that can be implemented to minimize the negative effects that stress can have on performance, especially in critical situations.
# The guest: Major Mark Sawa
Retired Major Mark Sawa, who served with the Travis County, Texas, Sheriff's Office, shares techniques for officers to remain calm and operate under stressful conditions.
EOF

speak defining-de-escalation <<'EOF'
# Introduction
Defining De-Escalation.
A Spotlight on Safety podcast from the VALOR Initiative, June 30, 2016.
# Not a new concept
Although de-escalation may be seen by some as a buzzword, utilizing a variety of techniques to peacefully resolve situations is not a new concept in law enforcement.
# The guest: Sergeant Eric Pisconski
With the help of Sergeant Eric Pisconski, who oversees the Seattle, Washington, Police Department's Crisis Response Unit, we examine one agency's strategy regarding de-escalation.
EOF

speak roll-call-briefing-defusing-difficult-encounters <<'EOF'
# Introduction
Roll-call briefing: Defusing Difficult Encounters.
A members-only Spotlight on Safety briefing for shift supervisors to play at roll call.
# Safety comes first
Most contacts with the public are uneventful.
When achieving compliance is harder, through willful resistance or a person's inability to comply, your first priority is your own safety and the safety of those around you.
# Before your next shift
Before your next shift, listen to the theme's two podcasts: Behavioral Response to Stress and Fear, and Defining De-Escalation.
EOF

art() { # output, subtitle
  "$CONVERT" -size 1400x1400 gradient:'#0b2545'-'#13315c' \
    -fill '#f2c14e' -draw 'rectangle 0,1180 1400,1200' \
    -font DejaVu-Sans-Bold -fill white -pointsize 96 -gravity north -annotate +0+260 'Spotlight' \
    -annotate +0+380 'on Safety' \
    -font DejaVu-Sans -fill '#f2c14e' -pointsize 64 -gravity center -annotate +0+140 "$2" \
    -font DejaVu-Sans -fill '#d9e2ec' -pointsize 44 -gravity south -annotate +0+90 'VALOR Initiative podcasts' \
    -strip -quality 85 "$tmp/art.jpg"
  place "$tmp/art.jpg" "$1"
}
art feeds/defusing-difficult-encounters.jpg 'Defusing Difficult\nEncounters'
art feeds/spotlight-on-safety.jpg 'All episodes'
art feeds/valor-members.jpg 'Members'
art episodes/defining-de-escalation/cover.jpg 'Defining\nDe-Escalation'

# The programme logo: a navy shield with a gold star beside "VALOR", on a transparent background, for
# the white rounded box in the site's dark blue header.
"$CONVERT" -size 240x80 xc:none \
  -fill '#0b2545' -stroke '#f2c14e' -strokewidth 3 \
  -draw "path 'M 14,10 L 62,10 L 62,40 C 62,56 51,66 38,72 C 25,66 14,56 14,40 Z'" \
  -stroke none -fill '#f2c14e' \
  -draw 'polygon 38.0,25.0 41.2,33.6 50.4,34.0 43.2,39.7 45.6,48.5 38.0,43.5 30.4,48.5 32.8,39.7 25.6,34.0 34.8,33.6' \
  -font DejaVu-Sans-Bold -pointsize 44 -fill '#0b2545' -gravity west -annotate +76-4 'VALOR' \
  -fill '#f2c14e' -draw 'rectangle 78,58 226,61' \
  -depth 8 -strip "$tmp/logo.png"
place "$tmp/logo.png" feeds/programme-logo.png

# The theme's posters, typeset from the source page's slogans, each checked by ghostscript and given a
# thumbnail rendered from the PDF itself (612 pt at 24 dpi: 204 x 264 px).
posters=feeds/defusing-difficult-encounters
mkdir -p "$posters"
poster() { # name, headline, line
  local pdf="$tmp/$1.pdf" errors
  python3 scripts/make-poster.py "$pdf" "$2" "$3"
  errors=$(gs -q -dSAFER -dNOPAUSE -dBATCH -dPDFSTOPONERROR -sDEVICE=nullpage "$pdf" 2>&1) ||
    { echo "$1.pdf: ghostscript failed: $errors" >&2; exit 1; }
  [[ -z $errors ]] || { echo "$1.pdf: ghostscript reported: $errors" >&2; exit 1; }
  (($(stat -c %s "$pdf") < 10240)) || { echo "$1.pdf is 10 KB or more" >&2; exit 1; }
  gs -q -dSAFER -dNOPAUSE -dBATCH -sDEVICE=png16m -r24 -dTextAlphaBits=4 -dGraphicsAlphaBits=4 \
    -sOutputFile="$tmp/$1-gs.png" "$pdf"
  "$CONVERT" "$tmp/$1-gs.png" -strip "$tmp/$1.png"
  place "$pdf" "$posters/$1.pdf"
  place "$tmp/$1.png" "$posters/$1.png"
}
poster increase-officer-safety 'Increase Officer Safety' \
  'De-escalation techniques for a peaceful resolution!'
poster keep-calm-and-de-escalate 'Keep Calm and De-Escalate' \
  'De-escalation techniques should be used unless it is unsafe or not feasible.'
poster what-you-see 'What You See' \
  'What you may see, may not be the whole picture.'
