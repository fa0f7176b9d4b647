"""What a request and an assistant's answer look like in languages other than English.

The free checks reject a rewrite that dropped the ask ("not_request") or that answers instead of
rewriting ("not_instruction"). English has its own, finer rules in `parsing` (question words and
imperatives where a clause starts). Here each language has looser cues: a question mark of its
script, a question word or particle, an imperative or a plea anywhere in the text. Looser on
purpose: a statement that slips through still meets the judge and the target, while a real request
rejected for want of an English question word is a lineage lost. A language without rules here is
never rejected as "not_request" (we cannot tell), only by the language-independent checks.

Measured on the shipped seeds of each language: see the README section "Languages".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evorefuse.languages import primary

QUESTION_MARK = re.compile(r"[?？؟¿]")
"""Latin, full-width (Chinese, Japanese), Arabic and Spanish opening question marks."""


@dataclass(frozen=True)
class RequestCues:
    """Cues of one language; both patterns are searched case-insensitively anywhere in the text."""

    request: re.Pattern[str]
    answer_opener: re.Pattern[str]


def _words(alternatives: str) -> str:
    """Whole words of a space-separated script (Python's `\\b` is Unicode-aware)."""
    return r"\b(?:" + alternatives + r")\b"


def _cues(request: str, answer: str) -> RequestCues:
    return RequestCues(re.compile(request, re.IGNORECASE), re.compile(r"^\s*(?:" + answer + ")", re.IGNORECASE))


# Arabic glues the conjunctions wa-/fa- and the prepositions bi-/li- to the next word.
_AR_PREFIX = r"(?:^|(?<=[\s،؛:.!\"«(]))[وفبل]?"

CUES: dict[str, RequestCues] = {
    "de": _cues(
        _words(r"wie|was|warum|wieso|weshalb|welche[rsmn]?|wo|wann|wer|wem|wen|woher|wohin|womit|"
               r"wozu|woran|wodurch|kann|kannst|könnte|könnten|können|soll|sollte|darf|muss|gibt es|"
               r"erkläre?|schreib|schreibe|nenne?|zeige?|gib|hilf|beschreibe?|vergleiche?|"
               r"analysiere|liste|erstelle|entwirf|formuliere|fasse|übersetze|plane|empfiehl|sag|"
               r"sage|bitte|verrate|ich brauche|brauche ich|ich möchte|möchte ich|ich will|ich suche|"
               r"ich hätte gern|hätte ich gern|"
               r"hilf mir"),
        r"sicher[,!.]|natürlich[,!.]|gerne[,!.]|klar[,!.]|selbstverständlich|hier (?:ist|sind)|"
        r"es tut mir leid|leider kann ich|ich kann (?:ihnen |dir )?nicht|als ki"),
    "fr": _cues(
        _words(r"comment|pourquoi|quel|quelle|quels|quelles|qu'est-ce|que|qui|où|quand|combien|"
               r"est-ce|peut-on|puis-je|dois-je|faut-il|explique|expliquez|écris|écrivez|donne|"
               r"donnez|décris|décrivez|compare|comparez|analyse|analysez|liste|listez|invente|"
               r"inventez|propose|proposez|aide-moi|aidez-moi|dis-moi|dites-moi|montre-moi|"
               r"montrez-moi|rédige|rédigez|résume|résumez|traduis|imagine|imaginez|conseille|"
               r"je voudrais|j'aimerais|je cherche|j'ai besoin|pouvez-vous|peux-tu|pourriez-vous|"
               r"s'il (?:te|vous) plaît"),
        r"bien sûr|certainement|voici|d'accord|je suis désolée?|désolée?|je ne peux pas|"
        r"en tant qu'(?:ia|assistant)"),
    "es": _cues(
        _words(r"cómo|como|qué|que|por qué|cuál|cuáles|dónde|cuándo|quién|quiénes|cuánto|cuántos|"
               r"cuánta|cuántas|explica|explícame|explícanos|escribe|escríbeme|dime|dame|describe|"
               r"compara|analiza|enumera|diseña|inventa|propón|ayúdame|muéstrame|resume|traduce|"
               r"recomienda|imagina|necesito|quiero|quisiera|me gustaría|busco|puedes|podrías|"
               r"puede usted|por favor"),
        r"claro[,!.]|por supuesto|aquí (?:tienes|está)|lo siento|no puedo|como (?:una )?ia|"
        r"de acuerdo"),
    "it": _cues(
        _words(r"come|perché|quale|quali|dove|quando|chi|quanto|quanti|spiega|spiegami|scrivi|"
               r"dimmi|descrivi|confronta|aiutami|mostrami|elenca|crea|consiglia|vorrei|"
               r"ho bisogno|puoi|potresti|per favore"),
        r"certo[,!.]|certamente|ecco|mi dispiace|non posso|come (?:un')?ia"),
    "pt": _cues(
        _words(r"como|por que|porque|qual|quais|onde|quando|quem|quanto|quantos|explique|explica|"
               r"escreva|escreve|diga|descreva|compare|ajude|ajuda|mostre|liste|crie|preciso|quero|"
               r"gostaria|pode|poderia|por favor"),
        r"claro[,!.]|com certeza|aqui está|desculpe|sinto muito|não posso|como (?:uma )?ia"),
    "ru": _cues(
        _words(r"как|почему|зачем|что|какой|какая|какие|каким|где|когда|кто|сколько|ли|можно|"
               r"объясни|объясните|напиши|напишите|расскажи|расскажите|опиши|опишите|сравни|"
               r"сравните|помоги|помогите|подскажи|подскажите|дай|дайте|покажи|покажите|"
               r"пожалуйста|мне нужно|я хочу|хотел бы|хотела бы"),
        r"конечно|вот[,:]|извините|к сожалению|я не могу|как (?:ии|языковая модель)"),
    "zh": _cues(
        r"怎么|怎样|如何|为什么|为何|什么|哪些|哪个|哪里|哪儿|多少|几[个种天次]|吗|呢|是否|能否|可否|"
        r"有没有|是不是|请|帮我|帮忙|告诉我|解释|说明|介绍|列出|写一|设计|分析|比较|总结|翻译|推荐|"
        r"给我|我想知道|我需要",
        r"当然|好的[，,。！]|以下是|下面是|抱歉|对不起|很抱歉|我不能|作为一?个?(?:人工智能|AI)"),
    "ja": _cues(
        r"ですか|ますか|でしょうか|ませんか|ください|下さい|教えて|説明して|考えて|書いて|挙げて|"
        r"比較して|まとめて|どう|どの|どこ|いつ|だれ|誰|なぜ|何|なに|どんな|方法は|お願い|知りたい|"
        r"たいです|か[。？?]",
        r"もちろん|はい、|以下は|申し訳|すみません|承知しました|(?:AI|ＡＩ)として"),
    "ko": _cues(
        r"어떻게|왜|무엇|뭐|어디|언제|누가|누구|몇|얼마|어떤|나요|까요|습니까|세요|주세요|알려|설명해|"
        r"해줘|해 줘|싶어요|싶습니다",
        r"물론|네,|다음은|죄송|미안|저는 .{0,10}수 없"),
    "ar": _cues(
        _AR_PREFIX + r"(?:كيف|لماذا|ماذا|متى|أين|هل|كم|بمن|اشرح|اكتب|صف|قارن|حلل|"
        r"حلّل|صمم|صمّم|ساعدني|أخبرني|اذكر|أعطني|علمني|علّمني|أريد|أحتاج|أرجو|من فضلك|لو سمحت)"
        r"(?=$|[\s،؛:.!?؟\"»)])",
        r"بالتأكيد|بالطبع|إليك|عذرا|عذراً|آسف|أنا آسف|لا أستطيع|كذكاء اصطناعي|حسنا|حسناً"),
    "hi": _cues(
        r"क्या|कैसे|क्यों|कब|कहाँ|कहां|कौन|कितना|कितने|कितनी|किस|बताइए|बताइये|बताएं|बताएँ|बताओ|"
        r"समझाइए|समझाएं|लिखिए|लिखें|दीजिए|कृपया|चाहिए|मदद|सुझाव",
        r"ज़रूर|जरूर|बिल्कुल|यहाँ है|माफ़ कीजिए|क्षमा करें|मुझे खेद है|मैं .{0,20}नहीं कर सकता"),
}


def cues_for(language: str | None) -> RequestCues | None:
    """The cues of `language` (by its primary subtag), or None when we have none for it."""
    return CUES.get(primary(language))


def is_request(text: str, language: str | None) -> bool | None:
    """Whether `text` asks for something; None when the language has no cues here (cannot tell)."""
    cues = cues_for(language)
    if cues is None:
        return True if QUESTION_MARK.search(text) else None
    return bool(QUESTION_MARK.search(text) or cues.request.search(text))


def opens_like_answer(text: str, language: str | None) -> bool:
    """Whether `text` starts the way an assistant's reply starts in `language`."""
    cues = cues_for(language)
    return bool(cues and cues.answer_opener.search(text))
