using RetriBooru.Runtime;

namespace RetriBooru.Data.Synth;

/// <summary>A clothing identity: one outfit of a character.</summary>
public sealed record SynthOutfit(int Index, string Top, string TopColor, string Bottom, string BottomColor)
{
    /// <summary>Danbooru-style clothing tags of this outfit (garment types and colour-garment tags).</summary>
    public IReadOnlyList<string> Tags
    {
        get
        {
            var tags = new List<string> { SynthVocabulary.GarmentTag(Top), SynthVocabulary.ColorGarmentTag(TopColor, Top) };
            if (Bottom != "none")
            {
                tags.Add(SynthVocabulary.GarmentTag(Bottom));
                tags.Add(SynthVocabulary.ColorGarmentTag(BottomColor, Bottom));
            }
            return tags;
        }
    }
}

/// <summary>A character: a fixed face identity and several outfits.</summary>
public sealed record SynthCharacter(
    int Index, string Name, string HairColor, string HairStyle, string EyeColor, string SkinTone, string Accessory,
    IReadOnlyList<SynthOutfit> Outfits)
{
    /// <summary>Danbooru character tag, e.g. <c>akane_(retribooru_synth)</c>.</summary>
    public string Tag => $"{Name}_(retribooru_synth)";

    public IReadOnlyList<string> FaceTags
    {
        get
        {
            var tags = new List<string> { $"{HairColor}_hair", SynthVocabulary.HairStyleTag(HairStyle), $"{EyeColor}_eyes" };
            if (Accessory != "none") tags.Add(Accessory);
            return tags;
        }
    }
}

/// <summary>
/// Draws the cast of a synthetic world from a seed. Any two characters differ in at least two face attributes,
/// and the outfits of one character differ in their top colour (the dominant colour of the clothing region) and in
/// at least one more garment attribute, so identities are separable by eye and by the identity index.
/// </summary>
public static class SynthWorld
{
    static readonly string[] Names =
    [
        "akane", "botan", "chiyo", "daisuke", "emi", "fumiko", "gin", "hana", "isamu", "junko", "kaede", "len",
        "mio", "nanami", "osamu", "rin", "sora", "tomo", "umi", "yui", "asuka", "haru", "kiri", "mai", "nao",
        "riko", "shiho", "taro", "yoko", "zen", "aya", "eri", "hibiki", "kana", "miku", "ritsu",
    ];

    public static IReadOnlyList<SynthCharacter> Create(int characters, int outfitsPerCharacter, long seed)
    {
        if (characters < 1) throw new ArgumentOutOfRangeException(nameof(characters), "need at least one character");
        if (outfitsPerCharacter < 1 || outfitsPerCharacter > SynthVocabulary.MaxOutfitsPerCharacter)
            throw new ArgumentOutOfRangeException(nameof(outfitsPerCharacter), $"outfits per character must be 1..{SynthVocabulary.MaxOutfitsPerCharacter}");
        var random = Seeding.Stream(seed, "synth-world");
        var cast = new List<SynthCharacter>();
        int attempts = 0;
        while (cast.Count < characters)
        {
            if (++attempts > 200_000) throw new InvalidOperationException($"cannot draw {characters} distinct characters");
            var face = DrawFace(random);
            // Relax the distinctness rule only when the vocabulary cannot hold that many characters.
            int minDifferences = characters <= 400 ? 2 : 1;
            bool distinct = cast.All(other =>
                (other.HairColor != face.Hair ? 1 : 0) + (other.HairStyle != face.Style ? 1 : 0) + (other.EyeColor != face.Eyes ? 1 : 0)
                + (other.SkinTone != face.Skin ? 1 : 0) + (other.Accessory != face.Accessory ? 1 : 0) >= minDifferences);
            if (!distinct) continue;
            int index = cast.Count;
            cast.Add(new SynthCharacter(index, NameOf(index), face.Hair, face.Style, face.Eyes, face.Skin, face.Accessory,
                DrawOutfits(random, outfitsPerCharacter, face.Hair)));
        }
        return cast;
    }

    /// <summary>
    /// A character whose face and single outfit are drawn without the distinctness rule of <see cref="Create"/>: for
    /// pictures that should each show a new identity (the attribute probe's training world), where attributes must not
    /// be predictable from who the character is.
    /// </summary>
    public static SynthCharacter DrawIndependent(Random random, int index)
    {
        var face = DrawFace(random);
        return new SynthCharacter(index, NameOf(index), face.Hair, face.Style, face.Eyes, face.Skin, face.Accessory, DrawOutfits(random, 1, face.Hair));
    }

    // The draw order (hair, style, eyes, skin, accessory) is part of every world's seed: keep it.
    static (string Hair, string Style, string Eyes, string Skin, string Accessory) DrawFace(Random random) => (
        Pick(random, SynthVocabulary.HairColors).Name,
        Pick(random, SynthVocabulary.HairStyles),
        Pick(random, SynthVocabulary.EyeColors).Name,
        Pick(random, SynthVocabulary.SkinTones).Name,
        Pick(random, SynthVocabulary.Accessories));

    static string NameOf(int index) => index < Names.Length ? Names[index] : $"{Names[index % Names.Length]}{index / Names.Length + 1}";

    static List<SynthOutfit> DrawOutfits(Random random, int count, string hairColor)
    {
        var outfits = new List<SynthOutfit>();
        while (outfits.Count < count)
        {
            string top = Pick(random, SynthVocabulary.TopGarments);
            string topColor = Pick(random, SynthVocabulary.GarmentColors).Name;
            // A top in the hair colour would blur the face/clothes split; skip it.
            if (topColor == hairColor) continue;
            string bottom = top == "dress" ? "none" : SynthVocabulary.BottomGarments[1 + random.Next(SynthVocabulary.BottomGarments.Count - 1)];
            string bottomColor = top == "dress" ? topColor : Pick(random, SynthVocabulary.GarmentColors).Name;
            if (outfits.Any(o => o.TopColor == topColor)) continue;
            outfits.Add(new SynthOutfit(outfits.Count, top, topColor, bottom, bottomColor));
        }
        return outfits;
    }

    static T Pick<T>(Random random, IReadOnlyList<T> list) => list[random.Next(list.Count)];
}
