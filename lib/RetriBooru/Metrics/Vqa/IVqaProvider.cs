using SkiaSharp;

namespace RetriBooru.Metrics.Vqa;

/// <summary>
/// Answers questions about an image in words. A provider may not answer every question (an attribute probe knows
/// only the attributes it was trained on): <see cref="CanAnswer"/> says which ones it does, and scores use the
/// questions every compared image was asked.
/// </summary>
public interface IVqaProvider
{
    string Name { get; }
    bool CanAnswer(VqaQuestion question);

    /// <summary>Answers each question it can answer, in the given order (unanswerable questions are left out).</summary>
    IReadOnlyList<VqaAnswer> Ask(SKBitmap image, IReadOnlyList<VqaQuestion> questions, CancellationToken cancellationToken = default);
}
