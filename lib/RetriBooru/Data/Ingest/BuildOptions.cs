using RetriBooru.Settings;
using System.Text.Json.Serialization;
using RetriBooru.Imaging;

namespace RetriBooru.Data;

/// <summary>Every knob of <see cref="Ingest.DatasetBuilder"/>; recorded in the stats JSON. The user-facing ones take their defaults from <see cref="DatasetSettings"/>.</summary>
public sealed record BuildOptions
{
    [JsonPropertyName("seed")] public long Seed { get; init; } = DatasetSettings.Default.Seed;
    [JsonPropertyName("face_references")] public int FaceReferences { get; init; } = DatasetSettings.Default.FaceReferences;
    [JsonPropertyName("clothes_references")] public int ClothesReferences { get; init; } = DatasetSettings.Default.ClothesReferences;
    /// <summary>Manifests to write: <c>b</c> (leakage-free, default) and/or <c>a</c> (target crops, leakage study).</summary>
    [JsonPropertyName("schemes")] public IReadOnlyList<ReferenceScheme> Schemes { get; init; } = [ReferenceScheme.B];
    [JsonPropertyName("near_duplicate_threshold")] public int NearDuplicateThreshold { get; init; } = DatasetSettings.Default.NearDuplicateThreshold;
    [JsonPropertyName("max_pixels")] public long MaxPixels { get; init; } = DatasetSettings.Default.MaxPixels;
    [JsonPropertyName("unseen_fraction")] public double UnseenFraction { get; init; } = DatasetSettings.Default.UnseenFraction;
    [JsonPropertyName("heldout_fraction")] public double HeldoutFraction { get; init; } = DatasetSettings.Default.HeldoutFraction;
    /// <summary>Smallest clothing region (mask minus face box) as a fraction of the image; smaller is rejected.</summary>
    [JsonPropertyName("min_clothing_fraction")] public double MinClothingFraction { get; init; } = 0.02;
    /// <summary>Smallest share of the clothing region the dominant colour must cover; less is rejected.</summary>
    [JsonPropertyName("min_dominant_share")] public double MinDominantShare { get; init; } = 0.25;
    /// <summary>Side of the square reference crops in pixels; 0 = the width of the image they are cut from.</summary>
    [JsonPropertyName("crop_size")] public int CropSize { get; init; } = DatasetSettings.Default.CropSize;

    public void Validate()
    {
        if (FaceReferences < 0 || ClothesReferences < 0 || FaceReferences + ClothesReferences == 0)
            throw new ArgumentException("need at least one reference (--face-refs/--clothes-refs)");
        if (Schemes.Count == 0 || Schemes.Any(s => !Enum.IsDefined(s))) throw new ArgumentException("schemes must be a and/or b");
        if (NearDuplicateThreshold is < 0 or > 64) throw new ArgumentException("--near-dup-threshold must be 0..64 bits");
        if (MaxPixels < 1) throw new ArgumentException("--max-pixels must be positive");
        if (UnseenFraction is < 0 or >= 1 || HeldoutFraction is < 0 or >= 1) throw new ArgumentException("split fractions must be in [0, 1)");
        if (CropSize < 0 || CropSize > 4096) throw new ArgumentException("--crop-size must be 0..4096");
    }
}
