#!/usr/bin/env bash
# Regenerates the demo catalog's media: spoken audio for the three "Defusing Difficult Encounters"
# episodes (two podcasts and the members-only roll-call briefing) and the 1400x1400 feed artwork. The outputs are committed; run this only to change them.
# Needs: espeak-ng, ffmpeg, imagemagick (apt-get install espeak-ng ffmpeg imagemagick).
set -euo pipefail
cd "$(dirname "$0")/.."

speak() { # slug, text
  local wav; wav=$(mktemp --suffix .wav)
  espeak-ng -v en-us -s 165 -w "$wav" "$2"
  # 64 kb/s mono CBR keeps each file well under 1 MB; -map_metadata -1 and -fflags +bitexact keep the
  # bytes reproducible, so regenerating does not change the content version in the URLs.
  ffmpeg -v error -y -i "$wav" -ac 1 -ar 22050 -c:a libmp3lame -b:a 64k \
    -map_metadata -1 -fflags +bitexact -flags:a +bitexact "episodes/$1/audio.mp3"
  rm -f "$wav"
}

speak behavioral-response-to-stress-and-fear "Behavioral Response to Stress and Fear. \
A Spotlight on Safety podcast from the VALOR Initiative, June 30, 2016. \
This episode examines how the mind and body respond to stress and explores methods that can be \
implemented to minimize the negative effects that stress can have on performance, especially in \
critical situations. Retired Major Mark Sawa, who served with the Travis County, Texas, Sheriff's \
Office, shares techniques for officers to remain calm and operate under stressful conditions."

speak defining-de-escalation "Defining De-Escalation. \
A Spotlight on Safety podcast from the VALOR Initiative, June 30, 2016. \
Although de-escalation may be seen by some as a buzzword, utilizing a variety of techniques to \
peacefully resolve situations is not a new concept in law enforcement. With the help of Sergeant \
Eric Pisconski, who oversees the Seattle, Washington, Police Department's Crisis Response Unit, \
we examine one agency's strategy regarding de-escalation."

speak roll-call-briefing-defusing-difficult-encounters "Roll-call briefing: Defusing Difficult \
Encounters. A members-only Spotlight on Safety briefing for shift supervisors to play at roll call. \
Most contacts with the public are uneventful. When achieving compliance is harder, through willful \
resistance or a person's inability to comply, your first priority is your own safety and the \
safety of those around you. Before your next shift, listen to the theme's two podcasts: \
Behavioral Response to Stress and Fear, and Defining De-Escalation."

art() { # output, subtitle
  /usr/bin/convert -size 1400x1400 gradient:'#0b2545'-'#13315c' \
    -fill '#f2c14e' -draw 'rectangle 0,1180 1400,1200' \
    -font DejaVu-Sans-Bold -fill white -pointsize 96 -gravity north -annotate +0+260 'Spotlight' \
    -annotate +0+380 'on Safety' \
    -font DejaVu-Sans -fill '#f2c14e' -pointsize 64 -gravity center -annotate +0+140 "$2" \
    -font DejaVu-Sans -fill '#d9e2ec' -pointsize 44 -gravity south -annotate +0+90 'VALOR Initiative podcasts' \
    -strip -quality 85 "$1"
}
art feeds/defusing-difficult-encounters.jpg 'Defusing Difficult\nEncounters'
art feeds/spotlight-on-safety.jpg 'All episodes'
art feeds/valor-members.jpg 'Members'
